/**
 * Process setup for genlab's own Node processes (the CLI and the bench's genlab
 * worker), imported first so that it runs before anything allocates: V8's concurrent
 * marking is turned off. Training allocates hundreds of MB of typed arrays a step, so
 * V8 starts a marking cycle several times a step, and its concurrent marker then takes
 * the second core from the native thread pool: inside realnvp-2d the 512x256x256 GEMMs
 * ran at one thread's speed (696-731 us with two pool threads, 697-738 with one, 330-375
 * alone). Without it the main thread does the marking in increments, and training steps
 * got faster (alternating runs of the bench models: lstm-lm 242 -> 203-206 ms, gpt 275
 * -> 255-266, realnvp-2d 49-55 -> 45-48; dcgan and conv-vae within noise). V8 reads the
 * flag when a marking cycle starts, so it must change before the first one: setting it
 * later, or setting --single-threaded-gc at run time, can abort the process. A library
 * user gets the same with `node --no-concurrent-marking script.js`.
 * GENLAB_CONCURRENT_MARKING=1 keeps V8's default.
 */
import { setFlagsFromString } from 'node:v8';

if (process.env.GENLAB_CONCURRENT_MARKING !== '1') setFlagsFromString('--no-concurrent-marking');
