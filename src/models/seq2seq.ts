/** Model family seq2seq (being written); registers itself with registerModel on import. */
export {};
