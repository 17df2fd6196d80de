import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * `mkdir -p`. Node's own `{ recursive: true }` never returns where the kernel
 * answers ENOENT for a folder and EEXIST for its parent (a path under /proc
 * or /sys): it retries for ever. Here each parent is tried once.
 */
export async function makeDir(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await stat(path).then((info) => info.isDirectory(), () => false))) return;
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw error;
    await makeDir(parent, mode);
    await mkdir(path, { mode }).catch(async (again: NodeJS.ErrnoException) => {
      // another process made it in between
      if (again.code !== 'EEXIST' || !(await stat(path)).isDirectory()) throw again;
    });
  }
}
