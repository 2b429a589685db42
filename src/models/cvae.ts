/** Model family cvae (being written); registers itself with registerModel on import. */
export {};
