/** Model family dcgan (being written); registers itself with registerModel on import. */
export {};
