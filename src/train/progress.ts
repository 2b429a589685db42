/**
 * Progress display: a one-line bar (step, loss, it/s, ETA) redrawn in place on a
 * terminal, plain periodic lines when stderr is not a TTY (logs, CI).
 */

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const ss = String(Math.floor(s % 60)).padStart(2, '0');
  return h > 0 ? `${h}:${String(m % 60).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class Progress {
  private readonly start = Date.now();
  private firstStep = -1;
  private lastDraw = 0;
  private lossAvg = NaN;
  private readonly tty: boolean;

  constructor(private readonly total: number, private readonly enabled = true, private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY);
  }

  update(step: number, loss: number): void {
    if (!this.enabled) return;
    if (this.firstStep < 0) this.firstStep = step - 1;
    // An exponential average keeps the shown loss readable.
    this.lossAvg = Number.isNaN(this.lossAvg) ? loss : 0.9 * this.lossAvg + 0.1 * loss;
    const now = Date.now();
    const interval = this.tty ? 100 : 10000;
    if (now - this.lastDraw < interval && step !== this.total) return;
    this.lastDraw = now;
    const secs = (now - this.start) / 1000;
    const rate = (step - this.firstStep) / Math.max(secs, 1e-9);
    const eta = (this.total - step) / rate;
    const text = `step ${step}/${this.total}  loss ${this.lossAvg.toPrecision(4)}  ${rate.toFixed(rate < 10 ? 2 : 1)} it/s  ETA ${fmtTime(eta)}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * step) / this.total);
      this.out.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}\x1b[K`);
    } else {
      this.out.write(text + '\n');
    }
  }

  /** A line that must not be overwritten by the bar (eval results). */
  note(line: string): void {
    if (!this.enabled) return;
    this.out.write(this.tty ? `\r${line}\x1b[K\n` : line + '\n');
  }

  done(line: string): void {
    if (!this.enabled) return;
    this.out.write(this.tty ? `\r${line}\x1b[K\n` : line + '\n');
  }

  close(): void {
    this.lastDraw = 0;
  }
}
