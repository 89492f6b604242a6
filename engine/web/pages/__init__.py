"""Generated pages, one family per module. Record ids in page paths use the `id` convertor:
1 to 18 digits, so every id that matches fits a BIGINT and a longer one is simply a 404."""

from starlette.convertors import CONVERTOR_TYPES, IntegerConvertor, register_url_convertor


class IdConvertor(IntegerConvertor):
    regex = "[0-9]{1,18}"


if "id" not in CONVERTOR_TYPES:
    register_url_convertor("id", IdConvertor())
