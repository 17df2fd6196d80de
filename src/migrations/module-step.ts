import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * A module revision's step runs user code in belay's process: an error it
 * raises where nothing can catch it (a throw in a timer, a promise it never
 * awaited) must not end the process, nor leave the run unsettled. It is told
 * to the step whose code made the timer or the promise, known from the async
 * context they carry (in a library caller's later run too): while that step
 * runs, it fails it; after, it is reported as a warning against its revision,
 * in its run. One without that context (a callback the revision left on
 * ctx.client, called from belay's socket) fails the step running, else is
 * told against the revision whose step ran last, the one it most likely came
 * from. The handlers, once installed, stay: the revision's timers may outlive the run.
 */
type Stray = (error: unknown) => void;

/** Told an error raised where nothing could catch it, after the step ended: known (from its context) to be the step's, or most likely its. */
type Late = (error: unknown, known: boolean) => void;

interface StepStrays {
  /** Set while the step runs. */
  fail: Stray | undefined;
  late: Late;
}

const origin = new AsyncLocalStorage<StepStrays>();

let failRunning: Stray | undefined;
let reportLate: Stray | undefined;

// installed by the first step, which sets one of them
const onStray = (error: unknown): void => {
  const step = origin.getStore();
  if (step) {
    if (step.fail) step.fail(error);
    else step.late(error, true);
  } else (failRunning ?? reportLate)?.(error);
};

let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);
}

export interface ModuleStepOptions {
  revision: string;
  /** The run's stop: the step is given up, failed, when it fires before the step settles. */
  signal?: AbortSignal;
  /** Told an error raised where nothing could catch it, after this step ended. */
  late: Late;
}

/**
 * Run a module's step: its result, or its failure, or a stray error's, or the
 * signal's. A step given up this way is abandoned, not awaited: its caller
 * must make sure nothing it does later reaches belay's session.
 */
export async function runModuleStep<T>(work: () => T | Promise<T>, { revision, signal, late }: ModuleStepOptions): Promise<T> {
  install();
  let fail: Stray = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const stopped = (): Error => new Error(`interrupted by a signal while ${revision} ran`);
  const interrupted = (): void => fail(stopped());
  failRunning = fail;
  const strays: StepStrays = { fail, late };
  signal?.addEventListener('abort', interrupted, { once: true });
  try {
    if (signal?.aborted) throw stopped();
    const result = await Promise.race([origin.run(strays, () => Promise.resolve().then(work)), failed]);
    // a promise the step left rejected with no handler is reported once the microtasks run out: before the next turn
    await Promise.race([new Promise((resolve) => setImmediate(resolve)), failed]);
    return result;
  } finally {
    signal?.removeEventListener('abort', interrupted);
    failRunning = undefined;
    strays.fail = undefined;
    reportLate = (error) => late(error, false);
  }
}
