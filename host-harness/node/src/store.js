// The WIT `store` interface over SQLite (see wit/store.wit): documents with
// opaque index terms and a membership relation, scoped to the tenant of the
// current request and running inside its transaction. Every write runs in
// a savepoint of its own, so a write that fails has changed nothing.
// Semantics follow the Rust reference host (host-harness/src/imports/store.rs)
// without its speed-ups (term statistics, count caches).
import { fail, guard } from './wit.js';
import { isUniqueViolation, opt, statements } from './db.js';

/** `body-contains`: LIKE folds ASCII case only, so non-ASCII bodies always pass. */
const BODY_CONTAINS = "(d.ascii = 0 OR d.body LIKE ? ESCAPE '\\')";
const likePattern = (s) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
const isAscii = (s) => /^[\x00-\x7f]*$/.test(s);

/** The SQL condition (over `terms t`) for a term query; pushes its arguments. */
function termCondition(q, args) {
  args.push(q.name);
  const m = q.match;
  switch (m.tag) {
    case 'exact':
      args.push(m.val);
      return 't.name = ? AND t.value = ?';
    case 'prefix':
      // The range lets the index walk; substr is the exact test.
      args.push(m.val, m.val, m.val);
      return 't.name = ? AND t.value >= ? AND substr(t.value, 1, length(?)) = ?';
    case 'contains':
      args.push(m.val);
      return 't.name = ? AND instr(t.value, ?) > 0';
    case 'range': {
      let cond = 't.name = ?';
      const [lo, hi] = m.val;
      if (lo) {
        cond += lo.inclusive ? ' AND t.value >= ?' : ' AND t.value > ?';
        args.push(lo.value);
      }
      if (hi) {
        cond += hi.inclusive ? ' AND t.value <= ?' : ' AND t.value < ?';
        args.push(hi.value);
      }
      return cond;
    }
    default:
      throw new TypeError(`unknown term match ${m.tag}`);
  }
}

/** Documents (`d`) with a term matching any of `queries`. */
function anyTerm(tenant, kind, queries, args) {
  if (queries.length === 0) return '0';
  args.push(tenant, kind);
  const any = queries.map((q) => `(${termCondition(q, args)})`).join(' OR ');
  return `d.seq IN (SELECT t.seq FROM terms t WHERE t.tenant = ? AND t.kind = ? AND (${any}))`;
}

/** `FROM … WHERE …` for the documents of a selection; pushes its arguments. */
function selectionSql(tenant, kind, selection, args) {
  args.push(tenant, kind);
  let sql = 'FROM documents d WHERE d.tenant = ? AND d.kind = ?';
  const clause = (c) => {
    if (c.tag === 'any-term') return anyTerm(tenant, kind, c.val, args);
    args.push(likePattern(c.val));
    return BODY_CONTAINS;
  };
  switch (selection.tag) {
    case 'all':
      break;
    case 'term':
      sql += ` AND ${anyTerm(tenant, kind, [selection.val], args)}`;
      break;
    case 'body-contains':
      sql += ` AND ${clause(selection)}`;
      break;
    case 'matching':
      for (const c of selection.val) sql += ` AND ${clause(c)}`;
      break;
    default:
      throw new TypeError(`unknown selection ${selection.tag}`);
  }
  return sql;
}

const document = (r) => ({ id: r.id, seq: BigInt(r.seq), version: BigInt(r.version), body: r.body });
const memberEntry = (r) => ({ id: r.id, kind: r.kind, label: opt(r.label), seq: BigInt(r.seq) });

/**
 * The `store` import. `state()` is the current request's state: its
 * `tenant` (row id) and `savepoints` counter.
 */
export function createStore(db, state) {
  const q = statements(db);
  const seqOf = (kind, id) =>
    q('SELECT seq, version FROM documents WHERE tenant = ? AND kind = ? AND id = ?').get(state().tenant, kind, id);
  const groupSeq = (kind, id) => {
    const row = seqOf(kind, id);
    if (!row) throw fail('not-found');
    return row.seq;
  };
  const insertTerms = (tenant, kind, seq, terms) => {
    const stmt = q('INSERT INTO terms (tenant, kind, name, value, seq, is_unique) VALUES (?, ?, ?, ?, ?, ?)');
    for (const t of terms) {
      try {
        stmt.run(tenant, kind, t.name, t.value, seq, t.unique ? 1 : 0);
      } catch (e) {
        if (isUniqueViolation(e)) throw fail('unique-violation', t.name);
        throw e;
      }
    }
  };
  // A write in a savepoint of its own (better-sqlite3 nests transactions
  // as savepoints).
  const atomic = (fn) => db.transaction(fn)();
  const expect = (row, expected) => {
    if (!row) throw fail('not-found');
    if (expected !== undefined && BigInt(row.version) !== expected) throw fail('conflict', BigInt(row.version));
  };
  const select = (kind, selection, page, cols) => {
    const args = [];
    let sql = `SELECT ${cols} ${selectionSql(state().tenant, kind, selection, args)}`;
    if (page.after !== undefined) {
      sql += page.descending ? ' AND d.seq < ?' : ' AND d.seq > ?';
      args.push(page.after);
    }
    sql += ` ORDER BY d.seq ${page.descending ? 'DESC' : 'ASC'} LIMIT ? OFFSET ?`;
    args.push(page.limit, page.offset);
    return q(sql).all(...args);
  };
  const containing = (groupKind, members, nested) => {
    const flag = nested ? 'EXISTS (SELECT 1 FROM members p WHERE p.member_seq = d.seq)' : '0';
    return q(`SELECT dm.id AS member, d.id, d.kind, d.label, d.seq, ${flag} AS nested
              FROM documents dm
              JOIN members m ON m.member_seq = dm.seq
              JOIN documents d ON d.seq = m.group_seq
              WHERE dm.tenant = ? AND d.kind = ? AND dm.id IN (SELECT value FROM json_each(?))
              ORDER BY d.seq, dm.id`)
      .all(state().tenant, groupKind, JSON.stringify(members));
  };

  return guard({
    get(kind, id) {
      const r = q('SELECT id, seq, version, body FROM documents WHERE tenant = ? AND kind = ? AND id = ?')
        .get(state().tenant, kind, id);
      return r ? document(r) : undefined;
    },
    // In id order, as the Rust host's plan happens to return them: the
    // engine's effects, and so the sync log, then come in the same order.
    getMany(kind, ids) {
      return q(`SELECT id, seq, version, body FROM documents
                WHERE tenant = ? AND kind = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`)
        .all(state().tenant, kind, JSON.stringify(ids)).map(document);
    },
    insert(kind, doc) {
      const tenant = state().tenant;
      return atomic(() => {
        let seq;
        try {
          seq = q('INSERT INTO documents (tenant, kind, id, version, label, body, ascii) VALUES (?, ?, ?, 1, ?, ?, ?)')
            .run(tenant, kind, doc.id, doc.label ?? null, doc.body, isAscii(doc.body) ? 1 : 0).lastInsertRowid;
        } catch (e) {
          if (isUniqueViolation(e)) throw fail('conflict', 0n);
          throw e;
        }
        insertTerms(tenant, kind, seq, doc.terms);
        return { seq: BigInt(seq), version: 1n };
      });
    },
    replace(kind, doc, expectedVersion) {
      const row = seqOf(kind, doc.id);
      expect(row, expectedVersion);
      return atomic(() => {
        q('UPDATE documents SET version = version + 1, label = ?, body = ?, ascii = ? WHERE seq = ?')
          .run(doc.label ?? null, doc.body, isAscii(doc.body) ? 1 : 0, row.seq);
        q('DELETE FROM terms WHERE seq = ?').run(row.seq);
        insertTerms(state().tenant, kind, row.seq, doc.terms);
        return { seq: BigInt(row.seq), version: BigInt(row.version) + 1n };
      });
    },
    delete(kind, id, expectedVersion) {
      const row = seqOf(kind, id);
      expect(row, expectedVersion);
      atomic(() => {
        for (const sql of ['DELETE FROM terms WHERE seq = ?', 'DELETE FROM members WHERE group_seq = ?',
          'DELETE FROM members WHERE member_seq = ?', 'DELETE FROM documents WHERE seq = ?']) {
          q(sql).run(row.seq);
        }
      });
    },
    scan(kind, selection, page) {
      return select(kind, selection, page, 'd.id, d.seq, d.version, d.body').map(document);
    },
    scanKeys(kind, selection, page) {
      return select(kind, selection, page, 'd.id, d.seq').map((r) => [r.id, BigInt(r.seq)]);
    },
    count(kind, selection) {
      const args = [];
      const sql = `SELECT count(*) AS n ${selectionSql(state().tenant, kind, selection, args)}`;
      return BigInt(q(sql).get(...args).n);
    },
    savepoint() {
      const s = state();
      s.savepoints += 1;
      db.exec(`SAVEPOINT engine_${s.savepoints}`);
      return s.savepoints;
    },
    rollbackTo(sp) {
      db.exec(`ROLLBACK TO engine_${sp >>> 0}; RELEASE engine_${sp >>> 0}`);
    },
    release(sp) {
      db.exec(`RELEASE engine_${sp >>> 0}`);
    },
    membersAdd(groupKind, group, members) {
      const g = groupSeq(groupKind, group);
      const seqs = [];
      const missing = [];
      for (const m of members) {
        const row = seqOf(m.kind, m.id);
        if (row) seqs.push([row.seq, m.id]);
        else missing.push(m.id);
      }
      if (missing.length) throw fail('missing', missing);
      return atomic(() => {
        const stmt = q('INSERT OR IGNORE INTO members (group_seq, member_seq) VALUES (?, ?)');
        return seqs.filter(([s]) => stmt.run(g, s).changes === 1).map(([, id]) => id);
      });
    },
    membersRemove(groupKind, group, ids) {
      const g = groupSeq(groupKind, group);
      const anySeq = q('SELECT seq FROM documents WHERE tenant = ? AND id = ? LIMIT 1');
      return atomic(() => {
        const stmt = q('DELETE FROM members WHERE group_seq = ? AND member_seq = ?');
        return ids.filter((id) => {
          const row = anySeq.get(state().tenant, id);
          return row && stmt.run(g, row.seq).changes === 1;
        });
      });
    },
    membersClear(groupKind, group) {
      const g = groupSeq(groupKind, group);
      return BigInt(atomic(() => q('DELETE FROM members WHERE group_seq = ?').run(g).changes));
    },
    membersContains(groupKind, group, ids) {
      const g = groupSeq(groupKind, group);
      const stmt = q(`SELECT 1 FROM members m JOIN documents d ON d.seq = m.member_seq
                      WHERE m.group_seq = ? AND d.tenant = ? AND d.id = ?`);
      return ids.filter((id) => stmt.get(g, state().tenant, id) !== undefined);
    },
    membersList(groupKind, group, after, limit) {
      const g = groupSeq(groupKind, group);
      return q(`SELECT d.id, d.kind, d.label, d.seq FROM members m JOIN documents d ON d.seq = m.member_seq
                WHERE m.group_seq = ? AND m.member_seq > ? ORDER BY m.member_seq LIMIT ?`)
        .all(g, after ?? -1, limit).map(memberEntry);
    },
    membersCount(groupKind, group) {
      const g = groupSeq(groupKind, group);
      return BigInt(q('SELECT count(*) AS n FROM members WHERE group_seq = ?').get(g).n);
    },
    groupsOf(groupKind, members) {
      return containing(groupKind, members, false).map((r) => [r.member, memberEntry(r)]);
    },
    groupsOfNested(groupKind, members) {
      return containing(groupKind, members, true).map((r) => [r.member, memberEntry(r), r.nested === 1]);
    },
  });
}
