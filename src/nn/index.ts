/** Public surface of src/nn (filled in by its modules). */
export {};
