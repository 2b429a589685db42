/**
 * Learning-rate schedules. Each schedule is a pure function of the step and the base
 * learning rate, so it can be plotted, tested and resumed without state; `LRScheduler`
 * writes it into an optimizer's param groups. The sequences match torch's schedulers
 * (torch.optim.lr_scheduler: StepLR, CosineAnnealingLR, LinearLR, and SequentialLR for
 * warm-up followed by another schedule) at every step they share.
 * Cosine annealing: Loshchilov & Hutter 2017, "SGDR", https://arxiv.org/abs/1608.03983.
 */

/** lr at `step` (0 = before the first `LRScheduler.step()`) for a group whose base lr is `baseLr`. */
export type Schedule = (step: number, baseLr: number) => number;

function checkInt(who: string, name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${who}: ${name} must be an integer >= ${min}, got ${v}`);
}

/** The base lr at every step. */
export function constantLR(): Schedule {
  return (_step, baseLr) => baseLr;
}

/**
 * Multiply by `gamma` every `stepSize` steps (torch StepLR).
 * @example
 * const s = stepLR({ stepSize: 30, gamma: 0.1 }); s(45, 0.1) // 0.01
 */
export function stepLR(opts: { stepSize: number; gamma?: number }): Schedule {
  const gamma = opts.gamma ?? 0.1;
  checkInt('stepLR', 'stepSize', opts.stepSize, 1);
  return (step, baseLr) => baseLr * Math.pow(gamma, Math.floor(step / opts.stepSize));
}

/**
 * Half a cosine from the base lr down to `minLr` over `totalSteps`, then `minLr`
 * (torch CosineAnnealingLR with T_max = totalSteps, eta_min = minLr; torch keeps
 * oscillating past T_max, this schedule stays at minLr).
 * @example
 * const s = cosineLR({ totalSteps: 1000, minLr: 1e-5 });
 */
export function cosineLR(opts: { totalSteps: number; minLr?: number }): Schedule {
  const minLr = opts.minLr ?? 0;
  checkInt('cosineLR', 'totalSteps', opts.totalSteps, 1);
  return (step, baseLr) => {
    const t = Math.min(Math.max(step, 0), opts.totalSteps);
    return minLr + ((baseLr - minLr) * (1 + Math.cos((Math.PI * t) / opts.totalSteps))) / 2;
  };
}

/**
 * Linear warm-up from `startFactor * baseLr` to the base lr over `warmupSteps`, then
 * `after` restarted at step 0 (torch SequentialLR of LinearLR and `after`, milestone
 * warmupSteps).
 * @example
 * // 100 warm-up steps, then cosine decay over the remaining 900.
 * const s = linearWarmup({ warmupSteps: 100 }, cosineLR({ totalSteps: 900 }));
 */
export function linearWarmup(opts: { warmupSteps: number; startFactor?: number }, after: Schedule = constantLR()): Schedule {
  const start = opts.startFactor ?? 0;
  checkInt('linearWarmup', 'warmupSteps', opts.warmupSteps, 0);
  if (!(start >= 0 && start <= 1)) throw new RangeError(`linearWarmup: startFactor must be in [0, 1], got ${start}`);
  return (step, baseLr) => {
    if (step >= opts.warmupSteps) return after(step - opts.warmupSteps, baseLr);
    return baseLr * (start + ((1 - start) * step) / opts.warmupSteps);
  };
}

/** What a scheduler needs of an optimizer: its groups' learning rates. */
export interface HasParamGroups {
  paramGroups: { lr: number }[];
}

/**
 * Sets each param group's lr to `schedule(step, baseLr)`, where baseLr is the group's lr
 * when the scheduler was made. As in torch, the lr of step 0 is set at construction and
 * `step()` is called once after each `optimizer.step()`.
 * @example
 * const sched = new LRScheduler(opt, linearWarmup({ warmupSteps: 10 }, cosineLR({ totalSteps: 90 })));
 * for (...) { opt.step(); sched.step(); }
 */
export class LRScheduler {
  readonly baseLrs: number[];
  /** Number of `step()` calls so far. */
  stepCount = 0;

  constructor(readonly optimizer: HasParamGroups, readonly schedule: Schedule) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** Advance one step and set the new learning rates. */
  step(): void {
    this.stepCount++;
    this.apply();
  }

  /** The learning rates set last, one per group. */
  get lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  private apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.schedule(this.stepCount, this.baseLrs[i]);
    });
  }

  stateDict(): { stepCount: number; baseLrs: number[] } {
    return { stepCount: this.stepCount, baseLrs: [...this.baseLrs] };
  }

  /** Restore the step count and base lrs, and set the lrs of that step. */
  loadStateDict(s: { stepCount: number; baseLrs: number[] }): void {
    if (!Number.isInteger(s?.stepCount) || s.stepCount < 0) throw new Error(`LRScheduler.loadStateDict: stepCount must be a non-negative integer, got ${s?.stepCount}`);
    if (!Array.isArray(s.baseLrs) || s.baseLrs.length !== this.baseLrs.length) {
      throw new Error(`LRScheduler.loadStateDict: state has ${s.baseLrs?.length} base lrs, optimizer has ${this.baseLrs.length} groups`);
    }
    this.stepCount = s.stepCount;
    s.baseLrs.forEach((v, i) => (this.baseLrs[i] = v));
    this.apply();
  }
}
