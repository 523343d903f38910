"""How the cost of a DynamoDB append and a query grows with the table on a moto server: the
benchmark behind scripts/moto_server.py's two fixes (README, "Test it"). Prints one line per
table size: the median of 30 conditional two-item `TransactWriteItems` appends (the event
store's shape) and the mean of 30 `Query` calls on one hash key.

Usage (moto's venv has boto3): python scripts/moto_costs.py ENDPOINT_URL [SIZES...]
  e.g. ~/.cache/quote-emulators/moto/bin/python scripts/moto_costs.py http://127.0.0.1:5000
"""

import statistics
import sys
import time
import uuid

import boto3


def main() -> None:
    url = sys.argv[1]
    sizes = [int(s) for s in sys.argv[2:]] or [0, 1000, 3000, 6000]
    ddb = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    table = "moto-costs-" + uuid.uuid4().hex[:8]
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    payload = "x" * 800

    def append(stream: int) -> None:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": {"S": f"s{stream}"}, "sk": {"N": "1"}, "data": {"S": payload}}}},
            {"Put": {"TableName": table, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": {"S": f"s{stream}"}, "sk": {"N": "0"}, "head": {"N": "1"}}}},
        ])

    streams = 0
    for size in sizes:
        while streams * 2 < size:
            append(streams)
            streams += 1
        appends = []
        for _ in range(30):
            started = time.perf_counter()
            append(streams)
            streams += 1
            appends.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for _ in range(30):
            ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "s1"}})
        query_ms = (time.perf_counter() - started) * 1000 / 30
        print(f"items={streams * 2:6d}  append p50={statistics.median(appends):7.1f} ms  "
              f"query mean={query_ms:6.1f} ms", flush=True)


if __name__ == "__main__":
    main()
