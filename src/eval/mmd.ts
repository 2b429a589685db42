/** eval/mmd (being written). */
export {};
