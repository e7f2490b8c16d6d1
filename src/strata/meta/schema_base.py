"""The one ``MetaData`` every table is declared on, and the column types the domains share.

Import tables from :mod:`strata.meta.schema` (which imports every domain's module, so the
metadata is complete); the domain modules (``schema_registry``, ``schema_release``,
``schema_auth``) import only this module, so there is no import cycle.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def byte_ordered(length: int) -> sa.types.TypeEngine[str]:
    """A name column that sorts and compares in byte order on every database.

    The tag list and the catalog are paged in lexical (byte) order (``n``/``last``). SQLite
    compares text bytewise by default; PostgreSQL uses the database's collation, typically a
    linguistic one (en-US sorts ``a`` before ``B`` and ignores punctuation at first), so there
    these columns carry ``COLLATE "C"`` (migration ``0004``). The ORDER BY and ``> last``
    comparisons then need nothing dialect-specific, and the primary-key index serves them.
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")
