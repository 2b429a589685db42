/** Model family gan (being written); registers itself with registerModel on import. */
export {};
