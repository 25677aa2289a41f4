// The schema check (check.mjs) against the committed snapshots: each kind of
// breaking change, made to a snapshot in memory, fails it and is named; an
// added optional field and an unchanged schema pass. Needs neither the server
// binary nor a browser: `make schema-check` runs it, and so does
// `node --test schema/` from e2e/.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe as suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kind, buildSchema, parse, print, visit } from 'graphql';
import { compare, describe } from './check.mjs';

const snapshots = fileURLToPath(new URL('../../schema/snapshots/', import.meta.url));
const served = readFileSync(join(snapshots, 'served.graphql'), 'utf8');
const subgraph = readFileSync(join(snapshots, 'subgraph.graphql'), 'utf8');

/** edit parses sdl, applies a graphql-js visitor to it, and prints it back. */
function edit(sdl, visitor) {
  const before = print(parse(sdl));
  const after = print(visit(parse(sdl), visitor));
  assert.notEqual(after, before, 'the edit changed the SDL (does the snapshot still have what this test edits?)');
  return after;
}

/** named is the name of the type a type reference ends in ([Foo!]! → Foo). */
function named(type) {
  return type.kind === Kind.NAMED_TYPE ? type.name.value : named(type.type);
}

/** inType applies fn to the fields (or enum values) of the definition called name. */
function inType(name, key, fn) {
  const change = (node) => (node.name.value === name ? { ...node, [key]: fn(node[key]) } : undefined);
  return {
    ObjectTypeDefinition: change,
    InterfaceTypeDefinition: change,
    InputObjectTypeDefinition: change,
    EnumTypeDefinition: change,
  };
}

/** inField applies fn to the field typeName.fieldName. */
function inField(typeName, fieldName, fn) {
  return inType(typeName, 'fields', (fields) => fields.map((f) => (f.name.value === fieldName ? fn(f) : f)));
}

/** withoutType removes the type called name and every field and argument of that type. */
function withoutType(name) {
  const uses = (node) => (named(node.type) === name ? null : undefined);
  const definition = (node) => (node.name.value === name ? null : undefined);
  return {
    ObjectTypeDefinition: definition,
    InterfaceTypeDefinition: definition,
    InputObjectTypeDefinition: definition,
    EnumTypeDefinition: definition,
    ScalarTypeDefinition: definition,
    UnionTypeDefinition: definition,
    FieldDefinition: uses,
    InputValueDefinition: uses,
  };
}

/** ref and nonNull are references to the named type: Name and Name!. */
const ref = (name) => ({ kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: name } });
const nonNull = (name) => ({ kind: Kind.NON_NULL_TYPE, type: ref(name) });

/** argument is an argument definition without a description. */
const argument = (name, type) => ({ kind: Kind.INPUT_VALUE_DEFINITION, name: { kind: Kind.NAME, value: name }, type, directives: [] });

/** field is a field definition without arguments or description. */
const field = (name, type) => ({ kind: Kind.FIELD_DEFINITION, name: { kind: Kind.NAME, value: name }, arguments: [], type, directives: [] });

/** assertBreaks checks that current breaks the snapshot with a change of type changeType at path, and returns the lines. */
async function assertBreaks(snapshot, current, changeType, path) {
  const { breaking } = await compare(snapshot, current);
  const lines = breaking.map(describe);
  assert.ok(
    breaking.some((c) => c.type === changeType && c.path === path),
    `a breaking ${changeType} at ${path} among:\n${lines.join('\n')}`,
  );
  for (const line of lines) {
    assert.match(line, /^BREAKING: /);
  }
  return lines;
}

suite('breaking changes fail the check, each named', () => {
  test('a removed type', async () => {
    const lines = await assertBreaks(served, edit(served, withoutType('SoftwarePort')), 'TYPE_REMOVED', 'SoftwarePort');
    assert.ok(lines.includes("BREAKING: Type 'SoftwarePort' was removed [SoftwarePort]"), lines.join('\n'));
  });

  test('a removed field', async () => {
    const current = edit(served, inType('ImageGroup', 'fields', (fields) => fields.filter((f) => f.name.value !== 'name')));
    const lines = await assertBreaks(served, current, 'FIELD_REMOVED', 'ImageGroup.name');
    assert.ok(lines.some((l) => l.includes("Field 'name'") && l.includes("'ImageGroup'")), lines.join('\n'));
  });

  test('a renamed field (removed under its old name)', async () => {
    const current = edit(served, inField('ImageGroup', 'name', (f) => ({ ...f, name: { ...f.name, value: 'title' } })));
    await assertBreaks(served, current, 'FIELD_REMOVED', 'ImageGroup.name');
  });

  test('a removed argument', async () => {
    const current = edit(served, inField('Query', 'imageGroups', (f) => ({ ...f, arguments: f.arguments.filter((a) => a.name.value !== 'before') })));
    await assertBreaks(served, current, 'FIELD_ARGUMENT_REMOVED', 'Query.imageGroups.before');
  });

  test('a removed enum value', async () => {
    const current = edit(served, inType('AuthorType', 'values', (values) => values.filter((v) => v.name.value !== 'OFFICIAL')));
    await assertBreaks(served, current, 'ENUM_VALUE_REMOVED', 'AuthorType.OFFICIAL');
  });

  test('a changed field type', async () => {
    const current = edit(served, inField('ImageVersion', 'sizeMB', (f) => ({ ...f, type: nonNull('String') })));
    await assertBreaks(served, current, 'FIELD_TYPE_CHANGED', 'ImageVersion.sizeMB');
  });

  test('a non-null field made nullable', async () => {
    const current = edit(served, inField('ImageGroup', 'description', (f) => ({ ...f, type: ref('String') })));
    await assertBreaks(served, current, 'FIELD_TYPE_CHANGED', 'ImageGroup.description');
  });

  test('a new required argument', async () => {
    const current = edit(served, inField('Query', 'imageGroups', (f) => ({ ...f, arguments: [...f.arguments, argument('schemaCheckProbe', nonNull('String'))] })));
    await assertBreaks(served, current, 'FIELD_ARGUMENT_ADDED', 'Query.imageGroups.schemaCheckProbe');
  });

  test('a removed @key in the subgraph SDL (a federation rule of check.mjs)', async () => {
    const current = edit(subgraph, {
      ObjectTypeDefinition: (node) =>
        node.name.value === 'ImageGroup'
          ? { ...node, directives: node.directives.filter((d) => !(d.name.value === 'key' && print(d).includes('"groupId"'))) }
          : undefined,
    });
    await assertBreaks(subgraph, current, 'DIRECTIVE_USAGE_OBJECT_REMOVED', 'ImageGroup.@key');
  });

  test('a removed field in the subgraph SDL', async () => {
    const current = edit(subgraph, inType('ImageVersion', 'fields', (fields) => fields.filter((f) => f.name.value !== 'readme')));
    await assertBreaks(subgraph, current, 'FIELD_REMOVED', 'ImageVersion.readme');
  });
});

suite('changes that break no client pass', () => {
  test('an identical schema: no change at all', async () => {
    for (const sdl of [served, subgraph]) {
      const result = await compare(sdl, sdl);
      assert.deepEqual([...result.breaking, ...result.dangerous, ...result.safe], []);
    }
  });

  test('an added optional field', async () => {
    const current = edit(served, inType('ImageGroup', 'fields', (fields) => [...fields, field('schemaCheckProbe', ref('String'))]));
    const { breaking, dangerous, safe } = await compare(served, current);
    assert.deepEqual(breaking, []);
    assert.deepEqual(dangerous, []);
    assert.deepEqual(safe.map(describe), ["non-breaking: Field 'schemaCheckProbe' was added to object type 'ImageGroup' [ImageGroup.schemaCheckProbe]"]);
  });

  test('a deprecated field', async () => {
    const deprecated = { kind: Kind.DIRECTIVE, name: { kind: Kind.NAME, value: 'deprecated' }, arguments: [{ kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'reason' }, value: { kind: Kind.STRING, value: 'Use `title`.' } }] };
    const current = edit(served, inField('ImageGroup', 'name', (f) => ({ ...f, directives: [...f.directives, deprecated] })));
    const { breaking, safe } = await compare(served, current);
    assert.deepEqual(breaking, []);
    assert.ok(safe.some((c) => c.type === 'FIELD_DEPRECATION_ADDED'), safe.map(describe).join('\n'));
  });

  test('an added enum value is dangerous: a warning, not a failure', async () => {
    const value = { kind: Kind.ENUM_VALUE_DEFINITION, name: { kind: Kind.NAME, value: 'SCHEMA_CHECK_PROBE' }, directives: [] };
    const current = edit(served, inType('AuthorType', 'values', (values) => [...values, value]));
    const { breaking, dangerous } = await compare(served, current);
    assert.deepEqual(breaking, []);
    assert.deepEqual(dangerous.map((c) => c.path), ['AuthorType.SCHEMA_CHECK_PROBE']);
    assert.match(describe(dangerous[0]), /^warning \(dangerous\): /);
  });
});

suite('the snapshots and the command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'schema-check-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (...args) =>
    promisify(execFile)(process.execPath, [fileURLToPath(new URL('./check.mjs', import.meta.url)), ...args]).then(
      (r) => ({ code: 0, ...r }),
      (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  test('the served snapshot is a valid schema for graphql-js, federation included', () => {
    const schema = buildSchema(served);
    assert.ok(schema.getQueryType().getFields()._entities, 'the served schema has _entities');
    assert.ok(schema.getQueryType().getFields()._service, 'the served schema has _service');
    assert.ok(schema.getType('_Any'), 'the served schema has _Any');
  });

  test('exits 0 on the snapshots themselves', async () => {
    const snap = (name) => join(snapshots, name);
    const r = await run(snap('served.graphql'), snap('served.graphql'), snap('subgraph.graphql'), snap('subgraph.graphql'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /schema-check: no breaking change/);
  });

  test('exits 1 on a breaking change and names it', async () => {
    const current = join(dir, 'served.graphql');
    writeFileSync(current, edit(served, inType('ImageGroup', 'fields', (fields) => fields.filter((f) => f.name.value !== 'name'))));
    const r = await run(join(snapshots, 'served.graphql'), current);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /BREAKING: Field 'name' was removed from object type 'ImageGroup' \[ImageGroup\.name\]/);
    assert.match(r.stderr, /1 breaking change/);
  });

  test('exits 2 without pairs of files', async () => {
    assert.equal((await run(join(snapshots, 'served.graphql'))).code, 2);
  });
});
