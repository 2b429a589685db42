/** Model family rnn_lm (being written); registers itself with registerModel on import. */
export {};
