"""moto, serving every AWS service the project tests on (DynamoDB, S3, SES, SNS, SQS, KMS) from
one process, handling one request at a time.

Why not moto's own `moto_server`:

- It handles each request on a thread of its own, and moto's DynamoDB takes no lock: two
  concurrent conditional writes on one item can both succeed (measured: two winners among 30
  concurrent `attribute_not_exists` transactions in 1 trial of 20), and a cancelled transaction
  restores whole tables, undoing other requests' writes. DynamoDB is linearizable per item; the
  event store, the lease tables, sweep claims and the notification ledger rely on it. Here
  connections are accepted on threads (a slow client cannot stop others from connecting, and
  HTTP/1.1 keep-alive works), but every request runs moto under one lock, start to end.
  `shared/testkit/tests/emulator_linearizable.rs` fails the suite on an emulator that is not.
- Two costs of moto's DynamoDB grow with the table, which makes long runs (chaos, soak) slow
  down for the emulator's sake, not ours. Before a `TransactWriteItems` it deep-copies every
  table the transaction touches, to roll back on a cancellation (an append took 8 ms on an
  empty table and 131 ms at 3,000 items); `transact_write_items` below keeps copies of the
  touched items only and restores those, the same rollback. And every `Query` sorts all the
  table's items before picking the key's (102 ms at 6,000 items); `query` below hands moto
  only the candidates: the items of the hash key on the table, the items that carry the
  index's key attributes on an index (an item without them is not in the index, as on
  DynamoDB). Results, order, paging and errors are moto's own.

With MOTO_OPERATION_LOG=FILE set, the server counts the requests it serves per operation
(`X-Amz-Target`, or the path for the query protocols) and the time each kind held the lock, and
rewrites FILE as JSON every 5 s: what the emulator spends its one request at a time on
(`docs/benchmarks-pipeline.md`).

Usage: python moto_server.py [HOST] [PORT]   (defaults 127.0.0.1 5000)
"""

import copy
import inspect
import io
import json
import logging
import os
import sys
import threading
import time

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as dynamodb_table
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

import moto.dynamodb.models as dynamodb_models


class OneAtATime:
    """A WSGI application that runs the wrapped one under a lock, the whole response included;
    with `operation_log`, it counts requests and lock time per operation into that file."""

    def __init__(self, app, operation_log=None):
        self.app = app
        self.lock = threading.Lock()
        self.operations = {}
        self.started = time.monotonic()
        self.logging = bool(operation_log)
        if operation_log:
            threading.Thread(target=self._write_log, args=(operation_log,), daemon=True).start()

    def __call__(self, environ, start_response):
        operation = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", "?")
        if self.logging:
            operation = _with_table(operation, environ)
        with self.lock:
            began = time.monotonic()
            body = self.app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                count, busy = self.operations.get(operation, (0, 0.0))
                self.operations[operation] = (count + 1, busy + time.monotonic() - began)

    def _write_log(self, path):
        while True:
            time.sleep(5)
            with self.lock:
                snapshot = dict(self.operations)
            elapsed = time.monotonic() - self.started
            report = {
                "elapsed_s": round(elapsed, 1),
                "busy_s": round(sum(b for _, b in snapshot.values()), 2),
                "operations": {
                    name: {"count": count, "busy_s": round(busy, 3)}
                    for name, (count, busy) in sorted(
                        snapshot.items(), key=lambda kv: -kv[1][1]
                    )
                },
            }
            with open(path + ".tmp", "w") as out:
                json.dump(report, out, indent=1)
            os.replace(path + ".tmp", path)


def _with_table(operation, environ):
    """The operation with the table (and index) a JSON request names, the name's last part only
    (`pb-1a2b-events` counts as `events`); the body is put back for the application."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        request = json.loads(body) if body.startswith(b"{") else {}
    except ValueError:
        return operation
    table = request.get("TableName") if isinstance(request, dict) else None
    if not table:
        return operation
    name = f"{operation} {table.rsplit('-', 1)[-1]}"
    index = request.get("IndexName")
    return f"{name}/{index}" if index else name


class _TablesByReference:
    """Stands in for the `copy` module inside moto's DynamoDB backend: a table "copy" is the table
    itself (its rollback then reassigns the same object), anything else is copied as before."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, dynamodb_table.Table):
            return value
        return copy.deepcopy(value, memo)


def _touched_key(backend, operation):
    """(table, hash, range) of the item a transaction operation writes, or None."""
    _, op = next(iter(operation.items()))
    table = backend.tables.get(op.get("TableName"))
    attrs = op.get("Item") or op.get("Key")
    if table is None or not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    hash_value = DynamoType(attrs[table.hash_key_attr])
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return table, hash_value, range_value


_moto_transact_write_items = DynamoDBBackend.transact_write_items
_moto_query = dynamodb_table.Table.query
_query_signature = inspect.signature(_moto_query)


def _items_of(table):
    """Every item of a table, unsorted."""
    for bucket in table.items.values():
        if table.range_key_attr is not None:
            yield from bucket.values()
        else:
            yield bucket


def query(self, *args, **kwargs):
    """moto's query, over the items that can match instead of the whole table, sorted."""
    arguments = _query_signature.bind(self, *args, **kwargs).arguments
    index_name, hash_key = arguments.get("index_name"), arguments.get("hash_key")
    if index_name:
        index = next((i for i in self.all_indexes() if i.name == index_name), None)
        if index is None:
            return _moto_query(self, *args, **kwargs)  # moto's own error
        key_attributes = [key["AttributeName"] for key in index.schema]
        candidates = [
            item for item in _items_of(self) if all(a in item.attrs for a in key_attributes)
        ]
    elif hash_key is not None:
        bucket = self.items.get(hash_key)
        if bucket is None:
            candidates = []
        elif self.range_key_attr is not None:
            candidates = list(bucket.values())
        else:
            candidates = [bucket]
    else:
        return _moto_query(self, *args, **kwargs)
    self.all_items = lambda: candidates
    try:
        return _moto_query(self, *args, **kwargs)
    finally:
        del self.all_items


def transact_write_items(self, transact_items):
    """moto's transaction, rolled back item by item instead of table by table."""
    saved = []
    for operation in transact_items[:100]:
        touched = _touched_key(self, operation) if isinstance(operation, dict) and operation else None
        if touched is not None:
            table, hash_value, range_value = touched
            saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(saved):
            if item is None:
                table.delete_item(hash_value, range_value)
            elif range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item
        raise


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    dynamodb_models.copy = _TablesByReference
    DynamoDBBackend.transact_write_items = transact_write_items
    dynamodb_table.Table.query = query
    # One line per request on stderr costs more than some requests; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = OneAtATime(
        DomainDispatcherApplication(create_backend_app), os.environ.get("MOTO_OPERATION_LOG")
    )
    print(f"moto (one request at a time) on http://{host}:{port}", file=sys.stderr, flush=True)
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
