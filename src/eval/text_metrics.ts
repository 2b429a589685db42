/** eval/text_metrics (being written). */
export {};
