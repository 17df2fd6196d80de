import { resolve } from 'node:path';
import { embeddedClusterStatus, removeEmbeddedCluster, startEmbeddedCluster, stopEmbeddedCluster, type EmbeddedClusterInfo } from '../cluster/embedded.js';
import { toDisplayUrl } from '../db/connection.js';
import type { BelayOptions } from './options.js';

function embeddedOptions(options: BelayOptions): { projectDir: string; pgBin: string | undefined; path: string | undefined } {
  const env = options.env ?? process.env;
  return { projectDir: resolve(options.cwd ?? process.cwd()), pgBin: env.PG_BIN, path: env.PATH };
}

/** `belay cluster start`: initialise on first use, start, and answer the connection URL. */
export async function clusterStart(options: BelayOptions = {}): Promise<{ url: string }> {
  return { url: toDisplayUrl(await startEmbeddedCluster(embeddedOptions(options))) };
}

/** `belay cluster stop` */
export async function clusterStop(options: BelayOptions = {}): Promise<{ stopped: boolean }> {
  return { stopped: await stopEmbeddedCluster(embeddedOptions(options)) };
}

/** `belay cluster remove`: stop it and delete its data (every database in it), its log and its socket folder. */
export async function clusterRemove(options: BelayOptions = {}): Promise<{ removed: string[] }> {
  return removeEmbeddedCluster(embeddedOptions(options));
}

/** `belay cluster status` */
export async function clusterStatus(options: BelayOptions = {}): Promise<EmbeddedClusterInfo & { url: string }> {
  const info = await embeddedClusterStatus(embeddedOptions(options));
  return { ...info, url: toDisplayUrl(info.params) };
}

/** `belay cluster url`: starts the cluster when it is not running, so the URL works. */
export async function clusterUrl(options: BelayOptions = {}): Promise<{ url: string }> {
  return clusterStart(options);
}
