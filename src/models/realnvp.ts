/** Model family realnvp (being written); registers itself with registerModel on import. */
export {};
