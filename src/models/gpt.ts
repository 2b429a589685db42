/** Model family gpt (being written); registers itself with registerModel on import. */
export {};
