/** eval/sequence_metrics (being written). */
export {};
