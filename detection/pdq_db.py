"""How PDQ hashes are stored and compared in the database.

On PostgreSQL a hash is a `bit(256)` column and the Hamming distance is computed in SQL
(`bit_count` of the XOR of two bit strings), so a lookup never loads the table into Python.
Beside it, a `<field>_words` column holds the hash's 16 position-tagged 16-bit words in an
`integer[]` under a GIN index (multi-index hashing, see detection.pdq): a lookup first asks
the index for the rows sharing a word within a bit of the query's, a few hundred among
100,000, and computes distances for those only: 1.5 ms in PostgreSQL and about 15 ms a
lookup in all (`manage.py benchmark_pdq_lookup`), where computing every row's distance took
90 ms for 100,000 submissions.

Elsewhere (SQLite, the embedded default) a hash is 64 hex digits, the words column stays
empty and a lookup scans the hashes in Python, fine at the sizes SQLite is used for.
Python always sees the hex form.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Func, IntegerField, Value
from django.db.models.sql.compiler import SQLCompiler

from detection.pdq import (
    PDQ_BITS,
    PDQ_HEX_DIGITS,
    pdq_bits_to_hex,
    pdq_distance,
    pdq_hex_normalise,
    pdq_hex_to_bits,
    pdq_word_keys,
    pdq_words,
)


def _on_postgresql(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql"


class PdqHashField(models.Field):
    """A PDQ hash, as 64 lower-case hex digits in Python."""

    description = "PDQ perceptual hash (256 bits)"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return f"bit({PDQ_BITS})" if _on_postgresql(connection) else f"char({PDQ_HEX_DIGITS})"

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None or not _on_postgresql(connection):
            return value
        return pdq_bits_to_hex(value)

    def to_python(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return pdq_hex_normalise(str(value))
        except ValueError as error:
            from django.core.exceptions import ValidationError

            raise ValidationError(str(error), code="invalid_pdq") from None

    def get_prep_value(self, value: Any) -> Any:
        return self.to_python(super().get_prep_value(value))

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        value = value if prepared else self.get_prep_value(value)
        if value is None or not _on_postgresql(connection):
            return value
        return pdq_hex_to_bits(value)

    def formfield(self, **kwargs: Any) -> Any:
        from django import forms

        return super().formfield(
            **{"form_class": forms.CharField, "max_length": PDQ_HEX_DIGITS, **kwargs}
        )


class PdqWordsField(models.Field):
    """The multi-index keys of the PDQ hash in the field `source` of the same model, kept by
    the model itself: set on every save from the hash (also by bulk_create). PostgreSQL
    only; elsewhere always empty."""

    description = "PDQ hash words for multi-index lookups"

    def __init__(self, *args: Any, source: str = "pdq", **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        for default in ("null", "blank", "editable"):
            kwargs.pop(default, None)
        return name, path, args, kwargs

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "integer[]" if _on_postgresql(connection) else "text"

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        pdq = getattr(model_instance, self.source)
        value = pdq_words(pdq_hex_normalise(pdq)) if pdq else None
        setattr(model_instance, self.attname, value)
        return value

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        return value if _on_postgresql(connection) else None


class WordsOverlap(Func):
    """Whether a words column shares a key with the given ones (`&&`, answered by its GIN
    index)."""

    output_field = BooleanField()
    template = "%(expressions)s::integer[]"
    arg_joiner = " && "

    def __init__(self, field: str, keys: list[int]) -> None:
        # A plain Field hands the list to the driver as it is: psycopg sends an array.
        super().__init__(models.F(field), Value(keys, output_field=models.Field()))


class HammingDistance(Func):
    """Bits that differ between a PDQ column and a given hash. PostgreSQL only: elsewhere
    `pdq_distances` compares in Python."""

    output_field = IntegerField()

    def __init__(self, field: str, pdq: str) -> None:
        super().__init__(models.F(field), Value(pdq_hex_to_bits(pdq_hex_normalise(pdq))))

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> Any:
        return super().as_sql(
            compiler,
            connection,
            template=f"bit_count(%(expressions)s::bit({PDQ_BITS}))",
            arg_joiner=" # ",
            **extra,
        )


def pdq_distances(
    queryset: models.QuerySet[Any], *, field: str, pdq: str, max_distance: int
) -> dict[Any, int]:
    """The primary keys of the rows whose hash in `field` is at most `max_distance` bits from
    `pdq`, each with its distance. Rows without a hash never match. On PostgreSQL the model
    must have the hash's words beside it, in `<field>_words` (PdqWordsField)."""
    queryset = queryset.filter(**{f"{field}__isnull": False})
    connection = connections[queryset.db]
    if _on_postgresql(connection):
        keys = pdq_word_keys(pdq_hex_normalise(pdq), max_distance)
        if keys is not None:
            queryset = queryset.filter(WordsOverlap(f"{field}_words", keys))
        near = (
            queryset.annotate(pdq_distance=HammingDistance(field, pdq))
            .filter(pdq_distance__lte=max_distance)
            .order_by()
            .values_list("pk", "pdq_distance")
        )
        if keys is None:
            return dict(near)
        # PostgreSQL estimates that `&&` with a few hundred keys keeps a quarter of the rows,
        # so it would read the table and compare each row's words (about 9 µs a row: 0.9 s
        # for 100,000). Told not to scan, it asks the GIN index, which hands back the few
        # hundred candidates in about a millisecond.
        with transaction.atomic(using=queryset.db), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('enable_seqscan'), "
                "set_config('enable_seqscan', 'off', true)"
            )
            previous = cursor.fetchone()[0]
            found = dict(near)
            # Releasing the savepoint keeps a local setting to the end of the caller's
            # transaction, so it is put back (a rollback on error undoes it by itself).
            cursor.execute("SELECT set_config('enable_seqscan', %s, true)", [previous])
        return found
    return {
        pk: distance
        for pk, other in queryset.order_by().values_list("pk", field).iterator(chunk_size=5000)
        if (distance := pdq_distance(pdq, other)) <= max_distance
    }


def pdq_words_index(table: str, column: str = "pdq_words") -> Any:
    """A migration operation: the GIN index of a words column, on PostgreSQL only (the
    column is empty elsewhere). Without pending-list batching (fastupdate), so that a lookup
    never scans recent inserts one by one."""
    from django.db import migrations

    name = f"{table}_{column}_gin"

    def create(apps: Any, schema_editor: Any) -> None:
        if _on_postgresql(schema_editor.connection):
            schema_editor.execute(
                f'CREATE INDEX "{name}" ON "{table}" USING gin ("{column}") WITH (fastupdate = off)'
            )

    def drop(apps: Any, schema_editor: Any) -> None:
        if _on_postgresql(schema_editor.connection):
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')

    return migrations.RunPython(create, drop, elidable=False)
