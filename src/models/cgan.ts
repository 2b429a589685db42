/** Model family cgan (being written); registers itself with registerModel on import. */
export {};
