/** Model family maf (being written); registers itself with registerModel on import. */
export {};
