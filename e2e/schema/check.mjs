// The schema's breaking-change check (`make schema-check`): compares each
// committed snapshot with the SDL the code serves now, through
// @graphql-inspector/core's diff, and fails when any change would break a
// client.
//
//   node e2e/schema/check.mjs SNAPSHOT CURRENT [SNAPSHOT CURRENT ...]
//
// Every change is printed with its criticality. A BREAKING change (a removed
// or renamed type, field, argument or enum value, a changed type, a new
// required argument, ...) fails the check, each one named; a DANGEROUS one is
// printed as a warning and passes. docs/schema-changes.md says what to do
// with either.
//
// Both SDLs are built with graphql-js's buildSchema and assumeValidSDL: the
// Go server's gqlparser has already validated the schema, and the subgraph
// SDL uses the federation directives it imports with @link (@key,
// @shareable) without defining them, as a router expects; graphql-js's SDL
// validation would refuse those as unknown directives.
import { readFileSync } from 'node:fs';
import { argv, exit } from 'node:process';
import { fileURLToPath } from 'node:url';
import { buildSchema } from 'graphql';
import { ChangeType, CriticalityLevel, diff } from '@graphql-inspector/core';

/** build turns SDL text into the GraphQLSchema that diff compares. */
export function build(sdl) {
  return buildSchema(sdl, { assumeValidSDL: true });
}

/**
 * keyRemovalBreaks is a diff rule for Apollo Federation. graphql-inspector
 * rates a removed directive use as DANGEROUS, but a router resolves another
 * subgraph's reference to an entity through the entity's @key: removing a
 * @key breaks every subgraph that references the entity by it, so here it is
 * BREAKING.
 */
export function keyRemovalBreaks({ changes }) {
  return changes.map((change) => {
    const removesKey =
      (change.type === ChangeType.DirectiveUsageObjectRemoved ||
        change.type === ChangeType.DirectiveUsageInterfaceRemoved) &&
      change.meta?.removedDirectiveName === 'key';
    if (!removesKey) {
      return change;
    }
    return {
      ...change,
      criticality: {
        level: CriticalityLevel.Breaking,
        reason: 'A federation router resolves references to an entity through its @key; subgraphs that reference it by the removed key break.',
      },
    };
  });
}

/**
 * compare diffs the snapshot's SDL with the current one and sorts the changes
 * by criticality: { breaking, dangerous, safe }, each a list of
 * graphql-inspector changes ({ type, message, path, criticality }).
 */
export async function compare(snapshotSDL, currentSDL) {
  const changes = await diff(build(snapshotSDL), build(currentSDL), [keyRemovalBreaks]);
  const of = (level) => changes.filter((c) => c.criticality.level === level);
  return {
    breaking: of(CriticalityLevel.Breaking),
    dangerous: of(CriticalityLevel.Dangerous),
    safe: of(CriticalityLevel.NonBreaking),
  };
}

/**
 * describe is one change as one line: its criticality, message and path, and
 * for a breaking or dangerous one graphql-inspector's reason.
 */
export function describe(change) {
  const label = {
    [CriticalityLevel.Breaking]: 'BREAKING',
    [CriticalityLevel.Dangerous]: 'warning (dangerous)',
    [CriticalityLevel.NonBreaking]: 'non-breaking',
  }[change.criticality.level];
  const path = change.path ? ` [${change.path}]` : '';
  const why = change.criticality.level !== CriticalityLevel.NonBreaking && change.criticality.reason;
  return `${label}: ${change.message}${path}${why ? ` (${why})` : ''}`;
}

/**
 * check compares each (snapshot, current) pair of files, prints what it finds
 * through log, and returns the number of breaking changes.
 */
export async function check(pairs, log = console.log) {
  let breaking = 0;
  for (const [snapshotPath, currentPath] of pairs) {
    const result = await compare(readFileSync(snapshotPath, 'utf8'), readFileSync(currentPath, 'utf8'));
    const all = [...result.breaking, ...result.dangerous, ...result.safe];
    log(`${snapshotPath} -> ${currentPath}: ${all.length === 0 ? 'no change' : `${result.breaking.length} breaking, ${result.dangerous.length} dangerous, ${result.safe.length} non-breaking`}`);
    for (const change of all) {
      log(`  ${describe(change)}`);
    }
    if (all.length > 0 && result.breaking.length === 0) {
      log(`  not breaking: run 'make schema-snapshot' and add a line to CHANGELOG.md`);
    }
    breaking += result.breaking.length;
  }
  return breaking;
}

async function main(args) {
  if (args.length === 0 || args.length % 2 !== 0) {
    console.error('usage: node e2e/schema/check.mjs SNAPSHOT CURRENT [SNAPSHOT CURRENT ...]');
    return 2;
  }
  const pairs = [];
  for (let i = 0; i < args.length; i += 2) {
    pairs.push([args[i], args[i + 1]]);
  }
  const breaking = await check(pairs);
  if (breaking > 0) {
    console.error(
      `schema-check: ${breaking} breaking change(s) against the committed snapshot. ` +
        'Restore what was removed or changed (deprecate it first: docs/schema-changes.md), ' +
        "or, when the break is deliberate, run 'make schema-snapshot' and record it in CHANGELOG.md in the same commit.",
    );
    return 1;
  }
  console.log('schema-check: no breaking change');
  return 0;
}

if (argv[1] && fileURLToPath(import.meta.url) === argv[1]) {
  exit(await main(argv.slice(2)));
}
