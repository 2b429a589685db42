/** Public surface of src/optim (filled in by its modules). */
export {};
