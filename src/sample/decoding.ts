/** sample/decoding (being written). */
export {};
