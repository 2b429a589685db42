/** Model family made (being written); registers itself with registerModel on import. */
export {};
