/** sample/hierarchical (being written). */
export {};
