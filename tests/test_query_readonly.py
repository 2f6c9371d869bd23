"""`kgrec query` / `store.cypher` run only what a read transaction of a non-admin reader may do (issue 19 defect 10).

The refusals run on the real Neo4j server through the real CLI; a concurrent client's open write transaction proves
that TERMINATE TRANSACTIONS no longer kills it.
"""

from __future__ import annotations

import os
import time

import neo4j
import pytest

from kgrec.cli import main
from kgrec.errors import StoreError
from kgrec.graph.neo4j_store import resolve_password
from kgrec.graph.readonly import check_read_only

URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")

REFUSED = {
    "terminate": ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TERMINATE is not allowed"),
    "clear caches": ("CALL db.clearQueryCaches()", "CALL db.clearQueryCaches is not an allowed procedure"),
    "clear caches quoted": ("CALL `db`.`clearQueryCaches`()", "CALL db.clearQueryCaches is not an allowed procedure"),
    "clear caches lower": ("call db.clearquerycaches() yield *", "CALL db.clearquerycaches is not an allowed procedure"),
    "create": ("CREATE (:KgrecReadOnlyProbe {id: 'x'})", "CREATE is not allowed"),
    "merge": ("MERGE (n:KgrecReadOnlyProbe {id: 'x'}) RETURN n", "MERGE is not allowed"),
    "set": ("MATCH (n:User) SET n.probe = 1", "SET is not allowed"),
    "delete": ("MATCH (n:KgrecReadOnlyProbe) DETACH DELETE n", "DETACH is not allowed"),
    "remove": ("MATCH (n:User) REMOVE n.probe", "REMOVE is not allowed"),
    "foreach": ("MATCH (n:User) FOREACH (x IN [1] | SET n.probe = x)", "FOREACH is not allowed"),
    "load csv": ("LOAD CSV FROM 'file:///etc/passwd' AS row RETURN row", "LOAD is not allowed"),
    "in transactions": ("UNWIND range(1, 3) AS x CALL (x) { RETURN x AS y } IN TRANSACTIONS OF 1 ROW RETURN y",
                        "IN TRANSACTIONS is not allowed"),
    "apoc write": ("CALL apoc.create.node(['X'], {}) YIELD node RETURN node", "CALL apoc.create.node is not an allowed procedure"),
    "apoc periodic": ("CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DELETE n', {})", "CALL apoc.periodic.iterate"),
    "dbms procedure": ("CALL dbms.killQueries(['query-1'])", "CALL dbms.killQueries is not an allowed procedure"),
    "show transactions": ("SHOW TRANSACTIONS", "SHOW is not allowed"),
    "show users": ("SHOW USERS", "SHOW is not allowed"),
    "use system": ("USE system SHOW DATABASES", "USE is not allowed"),
    "use clause": ("USE neo4j MATCH (n) RETURN count(n)", "USE is not allowed"),
    "drop index": ("DROP INDEX kgrec_item_embedding IF EXISTS", "DROP is not allowed"),
    "stop db": ("STOP DATABASE neo4j", "STOP is not allowed"),
    "second statement": ("MATCH (n) RETURN count(n) AS n; CREATE (:KgrecReadOnlyProbe)", "more than one statement"),
    "comment hides nothing": ("MATCH (n) RETURN count(n) AS n /* harmless */ // and\n; TERMINATE TRANSACTIONS 'x'",
                              "more than one statement"),
    "keyword after comment": ("MATCH (n) // comment\nSET n.probe = 1", "SET is not allowed"),
    "keyword after string": ("MATCH (n) WHERE n.id = 'a;b' SET n.probe = 1", "SET is not allowed"),
    "unterminated comment": ("MATCH (n) RETURN n /* TERMINATE", "refused"),
    "empty": ("  // nothing\n", "the query is empty"),
}

ALLOWED = {
    "match": "MATCH (n:KgrecReadOnlyProbe) RETURN count(n) AS n",
    "aggregation": "MATCH (u:User) WITH count(u) AS users RETURN users, users * 2 AS twice",
    "labels": "CALL db.labels() YIELD label RETURN label",
    "labels short": "CALL db.labels",
    "subquery": "CALL () { RETURN 1 AS x UNION ALL RETURN 2 AS x } RETURN sum(x) AS s",
    "keywords in strings": "RETURN 'CREATE (n) SET n.x = 1; TERMINATE TRANSACTIONS' AS text",
    "keywords in comments": "// SET, DELETE, TERMINATE, LOAD CSV\nRETURN 1 /* SHOW USERS; */ AS one",
    "keywords as names": "RETURN {set: 1, delete: 2} AS `create`, $show AS shown",
    "property keys": "MATCH (n:User) RETURN n.set AS s, n.remove AS r LIMIT 1",
    "starts with": "MATCH (u:User) WHERE u.id STARTS WITH 'zz-none' RETURN u.id",
    "trailing semicolon": "RETURN 1 AS one;",
    "explain": "EXPLAIN MATCH (n) RETURN n",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_read_only_refuses(case: str) -> None:
    query, message = REFUSED[case]
    with pytest.raises(StoreError, match="refused") as e:
        check_read_only(query)
    assert message in str(e.value) and "docs/queries.md" in str(e.value)


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_check_read_only_lets_read_queries_through(case: str) -> None:
    check_read_only(ALLOWED[case])


@pytest.mark.neo4j
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_kgrec_query_refuses_on_the_real_server(case: str, capsys) -> None:
    query, message = REFUSED[case]
    rc = main(["query", query, "--store", URI, "--param", "show=1"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("kgrec: error: refused: ") and message in err and "Traceback" not in err


@pytest.mark.neo4j
@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_kgrec_query_runs_read_queries_on_the_real_server(case: str, capsys) -> None:
    rc = main(["query", ALLOWED[case], "--store", URI, "--param", "show=1", "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.lstrip().startswith("[")


@pytest.mark.neo4j
def test_vector_index_query_reaches_the_server() -> None:
    """An allow-listed procedure is not refused: a missing index is the server's own error, not 'refused'."""
    import kgrec

    with kgrec.open_store(URI) as st, pytest.raises(StoreError, match="no such vector schema index") as e:
        st.cypher("CALL db.index.vector.queryNodes('kgrec_no_such_index', 3, $v) YIELD node, score RETURN node.id, score",
                  v=[0.1, 0.2, 0.3])
    assert "refused" not in str(e.value)


@pytest.mark.neo4j
def test_terminate_no_longer_kills_another_clients_write(capsys) -> None:
    """Another client holds an open write transaction; `kgrec query "TERMINATE TRANSACTIONS …"` is refused, the
    caches are not cleared, and the other client commits its write."""
    driver = neo4j.GraphDatabase.driver(URI, auth=("neo4j", resolve_password(URI) or ""))
    try:
        with driver.session() as s:
            tx = s.begin_transaction()
            tx.run("CREATE (:KgrecReadOnlyProbe {id: $id})", id="terminate-test").consume()
            tx_id = ""
            for _ in range(50):
                with driver.session() as other:
                    rows = other.run("SHOW TRANSACTIONS YIELD transactionId, currentQuery, status "
                                     "WHERE status = 'Running' RETURN transactionId, currentQuery").data()
                tx_id = next((r["transactionId"] for r in rows if "KgrecReadOnlyProbe" in (r["currentQuery"] or "")
                              or not r["currentQuery"]), "")
                if tx_id:
                    break
                time.sleep(0.05)
            assert tx_id, "the open transaction should be listed"
            rc = main(["query", f"TERMINATE TRANSACTIONS '{tx_id}'", "--store", URI])
            assert rc == 2 and "refused: TERMINATE is not allowed" in capsys.readouterr().err
            rc = main(["query", "CALL db.clearQueryCaches()", "--store", URI])
            assert rc == 2 and "not an allowed procedure" in capsys.readouterr().err
            tx.run("MATCH (n:KgrecReadOnlyProbe {id: $id}) SET n.committed = true", id="terminate-test").consume()
            tx.commit()  # would raise TransactionError had the transaction been terminated
        with driver.session() as s:
            assert s.run("MATCH (n:KgrecReadOnlyProbe {id: 'terminate-test', committed: true}) RETURN count(n) AS n").single()["n"] == 1
    finally:
        with driver.session() as s:
            s.run("MATCH (n:KgrecReadOnlyProbe) DETACH DELETE n").consume()
        driver.close()
