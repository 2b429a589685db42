/** Model family glow (being written); registers itself with registerModel on import. */
export {};
