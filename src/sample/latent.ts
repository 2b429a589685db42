/** sample/latent (being written). */
export {};
