/** Model family ddpm (being written); registers itself with registerModel on import. */
export {};
