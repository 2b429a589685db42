/** eval/image_metrics (being written). */
export {};
