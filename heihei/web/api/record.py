"""`/api/record/...`: voice records (seed 001 v1.3.0); the upload is a multipart form."""

from __future__ import annotations

import dataclasses

from heihei.web.api.base import HEIHEI, ApiModule
from heihei.web.kit import readers
from heihei.web.kit.params import integer, long, string, upload
from heihei.web.kit.routes import endpoint, new_app

#: the heihei surface, with the multipart field `file` an Upload (spooled to disk when large)
RECORDS = dataclasses.replace(HEIHEI, read=lambda request: readers.query_form_json(
    request, readers.site_limit(request), files=("file",)))
RECORD_ID = long("recordId", minimum=0, aliases=("id",))


class RecordApi(ApiModule):
    app = new_app(RECORDS)
    prefix = "/api/record"
    surface = RECORDS

    @endpoint(app, "/upload-record", "Upload the user's voice record (replaces the previous one)",
              upload("file", description="the recording: MP3 or M4A (AAC), a multipart file field"),
              string("fileMd5", pattern=r"[0-9A-Fa-f]{32}", max_length=32, description="hex MD5 of the file"),
              string("fileName", required=False, max_length=200, description="accepted, not used: the server "
                                                                             "names the file"),
              integer("recordLength", required=False, minimum=0, maximum=86400,
                      description="seconds; accepted, not trusted: the length is measured from the file"),
              errors=(754, 755, 756), returns=("record",), methods=("POST",))
    async def upload_record(self, call, a):
        # at most one byte over the cap is read: a larger file is refused as too big without being read
        data = a["file"].file.read(self.social.records.max_bytes + 1)
        return {"record": await self.social.records.upload(call.user, data, a["fileMd5"])}

    @endpoint(app, "/refresh-record", "The user's own record and a page of the others' records, newest first",
              long("score", required=False, default=0, minimum=0,
                   description="0: the newest; else the records older than this (the last record's score)"),
              returns=("data",))
    async def refresh_record(self, call, a):
        return await self.social.records.refresh(call.user, a["score"])

    @endpoint(app, "/read-record", "Listen to a record (counted)", RECORD_ID, errors=(757,), returns=("record",))
    async def read_record(self, call, a):
        return await self.social.records.read(call.user, a["recordId"])

    @endpoint(app, "/delete-record", "Delete one's own record", RECORD_ID, errors=(757,))
    async def delete_record(self, call, a):
        await self.social.records.delete(call.user, a["recordId"])
