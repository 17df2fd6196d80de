import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const APP = fileURLToPath(new URL('../../scripts/demo/app.mjs', import.meta.url));

export interface DemoApp {
  port: number;
  registerUrl: string;
  stop(): Promise<void>;
}

/** The seed's little application (scripts/demo/app.mjs), a real HTTP server on 127.0.0.1. */
export async function startDemoApp(databaseUrl: string, env: Record<string, string> = {}): Promise<DemoApp> {
  const child: ChildProcess = spawn(process.execPath, [APP], {
    env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('demo app did not start')), 10_000);
    child.stdout!.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(Number(/listening (\d+)/.exec(chunk.toString())?.[1]));
    });
    child.once('exit', () => reject(new Error('demo app exited')));
  });
  return {
    port,
    registerUrl: `http://127.0.0.1:${port}/api/v1/onboarding/register/complete`,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
