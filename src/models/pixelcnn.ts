/** Model family pixelcnn (being written); registers itself with registerModel on import. */
export {};
