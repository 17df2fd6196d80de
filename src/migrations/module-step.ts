/**
 * A module revision's step runs user code in belay's process: an error it
 * raises where nothing can catch it (a throw in a timer, a promise it never
 * awaited) must not end the process, nor leave the run unsettled. While a step
 * runs, such an error fails it; after, it is reported as a warning against
 * the revision whose step ran last, the one it most likely came from. The
 * handlers, once installed, stay: the revision's timers may outlive the run.
 */
type Stray = (error: unknown) => void;

let failRunning: Stray | undefined;
let reportLate: Stray | undefined;

// installed by the first step, which sets one of them
const onStray = (error: unknown): void => (failRunning ?? reportLate)?.(error);

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
  late: Stray;
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
  signal?.addEventListener('abort', interrupted, { once: true });
  try {
    if (signal?.aborted) throw stopped();
    const result = await Promise.race([Promise.resolve().then(work), failed]);
    // a promise the step left rejected with no handler is reported once the microtasks run out: before the next turn
    await Promise.race([new Promise((resolve) => setImmediate(resolve)), failed]);
    return result;
  } finally {
    signal?.removeEventListener('abort', interrupted);
    failRunning = undefined;
    reportLate = late;
  }
}
