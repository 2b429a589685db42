/** eval/likelihood (being written). */
export {};
