/** Convolutions, pooling and upsampling (in progress). */
export {};
