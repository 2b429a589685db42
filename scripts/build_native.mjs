// Placeholder until the native addon lands: nothing to build yet.
console.log('genlab: native addon not built (no sources yet)');
