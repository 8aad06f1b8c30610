/**
 * Files and lines a run changed, from git: `git diff --numstat <base>` in the workdir,
 * where `base` is the commit checked out when the child started — so commits the agent
 * made count as well as what it left uncommitted (tracked files; binary files count as
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

/** The commit checked out in `cwd`, or null (not a repository, no commit yet, no git). */
export async function gitHead(cwd: string): Promise<string | null> {
  const out = await git(cwd, ['rev-parse', '--verify', '--quiet', 'HEAD']);
  const sha = out?.trim() ?? '';
  return /^[0-9a-f]{40,64}$/.test(sha) ? sha : null;
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
