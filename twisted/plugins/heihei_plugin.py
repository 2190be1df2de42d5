"""twistd plugin: `twistd heihei`. Kept tiny so plugin scans stay cheap."""
from twisted.application.service import ServiceMaker

heihei = ServiceMaker(
    "heihei",
    "heihei.tap",
    "real-time messaging server (live, heihei, boss and J-IM protocols)",
    "heihei",
)
