import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/** chattr +i (even root can then neither write nor delete the file) or -i; false where the file system or the user cannot. */
export const immutable = (file: string, on: boolean): boolean => spawnSync('chattr', [on ? '+i' : '-i', file], { stdio: 'ignore', timeout: 10_000 }).status === 0;

/** Whether a file in `dir` can be made immutable (root and a file system with the flag), tried on a file of its own. */
export async function canMakeImmutable(dir: string): Promise<boolean> {
  const probe = path.join(dir, 'immutable-probe');
  await writeFile(probe, '');
  const can = immutable(probe, true);
  immutable(probe, false);
  return can;
}
