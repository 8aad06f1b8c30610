/**
 * Files and lines a run changed, from git: `git diff --numstat <base>` in the workdir,
 * where `base` is a snapshot of the working tree taken when the child started (`git
 * stash create`: a commit object of the tracked files as they are, written without
 * touching the working tree, the index or any ref; HEAD when nothing is modified). So
 * what was already modified before the run does not count, and commits the agent made
 * count as well as what it left uncommitted (tracked files; binary files count as
 * changed files with no lines). Nothing when the workdir is not a git repository or git
 * is missing.
 */
import { execFile } from 'node:child_process';

const git = (cwd: string, args: string[]): Promise<string | null> =>
  new Promise((resolve) => {
    execFile('git', args, { cwd, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });

/** A commit of `cwd`'s working tree as it is now, or null (not a repository, no commit yet, no git). */
export async function gitBase(cwd: string): Promise<string | null> {
  const head = (await git(cwd, ['rev-parse', '--verify', '--quiet', 'HEAD']))?.trim() ?? '';
  if (!/^[0-9a-f]{40,64}$/.test(head)) return null;
  const snapshot = (await git(cwd, ['stash', 'create']))?.trim() ?? '';
  return /^[0-9a-f]{40,64}$/.test(snapshot) ? snapshot : head;
}

/** What changed since `base` in `cwd`'s working tree, or null. */
export async function diffStats(
  cwd: string,
  base: string,
): Promise<{ filesChanged: number; linesAdded: number; linesDeleted: number } | null> {
  const out = await git(cwd, ['diff', '--numstat', base]);
  if (out === null) return null;
  let filesChanged = 0;
  let linesAdded = 0;
  let linesDeleted = 0;
  for (const line of out.split('\n')) {
    const m = /^(\d+|-)\t(\d+|-)\t/.exec(line);
    if (!m) continue;
    filesChanged++;
    if (m[1] !== '-') linesAdded += Number(m[1]);
    if (m[2] !== '-') linesDeleted += Number(m[2]);
  }
  return { filesChanged, linesAdded, linesDeleted };
}
