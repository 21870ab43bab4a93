"""Drives Radicale through the caldav client library, as a calendar application would.

Usage: caldav_client.py URL USER PASSWORD OTHER_USER OTHER_PASSWORD

Creates a calendar, stores two events, searches a date range, reads one event back by
its UID, changes it, deletes the other, and checks that another user can neither list
nor read the calendar. Prints what it saw as one JSON object on stdout; the test
asserts on it.
"""
import datetime
import json
import sys

import caldav
from caldav.lib import error

url, user, password, other_user, other_password = sys.argv[1:6]

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//mod_wsgi_rs tests//caldav client//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20250101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
DESCRIPTION:{description}
END:VEVENT
END:VCALENDAR
"""

seen = {}
client = caldav.DAVClient(url=url, username=user, password=password)
principal = client.principal()
seen["principal_url"] = str(principal.url)

calendar = principal.make_calendar(name="Team calendar", cal_id="team")
seen["calendar_url"] = str(calendar.url)
seen["calendar_names"] = sorted(c.name for c in principal.calendars())

calendar.save_event(EVENT.format(
    uid="design-review@example.com", start="20250310T090000Z", end="20250310T100000Z",
    summary="Design review \u2013 caf\u00e9 room", description="Bring the printouts"))
calendar.save_event(EVENT.format(
    uid="retro@example.com", start="20250320T140000Z", end="20250320T150000Z",
    summary="Retrospective", description="Sprint 12"))
calendar.save_event(EVENT.format(
    uid="later@example.com", start="20250601T080000Z", end="20250601T090000Z",
    summary="Outside the searched range", description=""))

found = calendar.search(
    start=datetime.datetime(2025, 3, 1, tzinfo=datetime.timezone.utc),
    end=datetime.datetime(2025, 4, 1, tzinfo=datetime.timezone.utc),
    event=True, expand=False)
seen["march_summaries"] = sorted(str(e.icalendar_component["summary"]) for e in found)

event = calendar.event_by_uid("design-review@example.com")
seen["by_uid_summary"] = str(event.icalendar_component["summary"])
seen["by_uid_description"] = str(event.icalendar_component["description"])

# Change the event's summary, delete another, and read the calendar again.
event.icalendar_component["summary"] = "Design review (moved)"
event.save()
calendar.event_by_uid("retro@example.com").delete()
seen["all_summaries_after_edit"] = sorted(
    str(e.icalendar_component["summary"]) for e in calendar.events())

# Another user is authenticated but may not see this user's collections.
intruder = caldav.DAVClient(url=url, username=other_user, password=other_password)
try:
    intruder.calendar(url=seen["calendar_url"]).events()
    seen["other_user_read"] = "allowed"
except error.DAVError as e:
    seen["other_user_read"] = type(e).__name__

# A wrong password is refused.
try:
    caldav.DAVClient(url=url, username=user, password=password + "x").principal()
    seen["wrong_password"] = "accepted"
except error.AuthorizationError as e:
    seen["wrong_password"] = "AuthorizationError"

print(json.dumps(seen, sort_keys=True))
