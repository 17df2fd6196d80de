// Reading a `node --cpu-prof` profile of a belay process: where its wall time
// went, by the source area of the code on the CPU (src/<area>, a package,
// node itself) or waiting with nothing to run (idle: server round trips,
// fsyncs and other I/O). Frames of the bundled CLI are mapped back to their
// source file through the chunk's source map.
import { readFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The source file of a bundled frame, through its chunk's .map (read once per chunk). */
function sourceMapper() {
  const maps = new Map();
  return async (url, line, column) => {
    if (!url.startsWith('file://') || !url.includes('/dist/cli/')) return null;
    if (!maps.has(url)) maps.set(url, readFile(`${fileURLToPath(url)}.map`, 'utf8').then((text) => new SourceMap(JSON.parse(text)), () => null));
    const map = await maps.get(url);
    return map?.findEntry(line, column)?.originalSource ?? null;
  };
}

function areaOf(file) {
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(file);
  if (pkg) return pkg[1];
  const src = /\/src\/([^/]+)\//.exec(file);
  if (src) return `src/${src[1]}`;
  return /\/src\/[^/]+$/.test(file) ? 'src' : file;
}

/**
 * { totalMs, areas: [{ area, ms }] } by self time, largest first. Areas:
 * src/<folder>, a package name, "node internals", "idle (waiting on I/O)",
 * "garbage collection", "(program)" (V8 and native code outside JS frames).
 */
export async function timeByArea(profileFile) {
  const profile = JSON.parse(await readFile(profileFile, 'utf8'));
  const mapSource = sourceMapper();
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + profile.timeDeltas[i]));
  const areas = new Map();
  let total = 0;
  for (const [id, us] of selfUs) {
    const { url, functionName, lineNumber, columnNumber } = nodes.get(id).callFrame;
    let area;
    if (functionName === '(idle)') area = 'idle (waiting on I/O: the server, fsync)';
    else if (functionName === '(garbage collector)') area = 'garbage collection';
    else if (!url) area = functionName === '(program)' ? '(program): V8 and native code' : 'node internals';
    else if (url.startsWith('node:')) area = 'node internals';
    else area = areaOf((await mapSource(url, lineNumber, columnNumber)) ?? url);
    areas.set(area, (areas.get(area) ?? 0) + us);
    total += us;
  }
  return {
    totalMs: total / 1000,
    areas: [...areas].map(([area, us]) => ({ area, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
}
