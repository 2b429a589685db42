/** Model family ntm (being written); registers itself with registerModel on import. */
export {};
