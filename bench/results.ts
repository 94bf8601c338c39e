import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../devstack/tools.js';

const resultsFile = path.join(projectRoot, 'docs', 'benchmarks.md');

/**
 * Puts a benchmark's section into docs/benchmarks.md in place of its previous run, leaving every
 * other section as it was. A section starts with `## <title> (` and ends at the next `## `.
 */
export function writeBenchmarkSection(title: string, section: string): string {
  const existing = fs.existsSync(resultsFile)
    ? fs.readFileSync(resultsFile, 'utf8')
    : '# Benchmarks\n\nEach section is written by its benchmark; the baseline is measured in the same run.\n\n';
  const parts = existing.split(/(?=^## )/m);
  const index = parts.findIndex((p) => p.startsWith(`## ${title} (`));
  const text = `${section.trimEnd()}\n\n`;
  if (index === -1) parts.push(text);
  else parts[index] = text;
  fs.writeFileSync(resultsFile, parts.join(''));
  return resultsFile;
}

/** The `q` quantile (0–1) of ascending latencies in ms, rounded to a whole ms; NaN when there are none. */
export function quantile(sorted: readonly number[], q: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN);
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
