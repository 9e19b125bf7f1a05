"""The provider's documented rules for execute_* requests, and its answers' shapes: pure, no I/O."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, TypeGuard

ENVELOPES = ("message", "payload", "payload_message", "alternate")
MESSAGES_VI = {
    "limit_service": "Gói dịch vụ dùng thử không hỗ trợ gọi tự động",
    "limit_word_session": "Vượt quá giới hạn 300 ký tự cho một phiên gọi",
    "limit_word": "Vượt quá giới hạn ký tự trong ngày",
    "balance_is_not_enough": "Số dư tài khoản không đủ",
    "limit_request_30_minute": "Vượt quá số lần tra cứu cho phép trong 30 phút",
}
VOICES = frozenset({"banmai", "leminh", "lannhi"})
STEP_TYPES = frozenset({"Text_variable", "Recording", "Ivr_menu"})
COUNT_FIELDS = ("num_retry", "num_per_call", "distance_per_call", "distance_retry")
ALLOWED_FIELDS = {
    "execute_by_phone": frozenset(
        {"name", "voice", "speed", "cid", "template_dialplans", "variables"}
        | {"phone_number_list", *COUNT_FIELDS}
    ),
    "execute_by_extension": frozenset({"cid", "template_dialplans", "variables", "extensions"}),
}
PHONE = re.compile(r"\+?[0-9]{9,15}")


def validate(action: str, body: dict[str, Any]) -> str | None:
    """The error code that rejects an execute_* body, or None."""
    if not body.keys() <= ALLOWED_FIELDS[action]:
        return "unknown_field"
    if action == "execute_by_phone":
        code = _check_phone_fields(body)
    else:
        code = _check_extension_fields(body)
    return code or _check_script(body)


def _check_phone_fields(body: dict[str, Any]) -> str | None:
    numbers = body.get("phone_number_list")
    if not is_str_list(numbers) or not all(PHONE.fullmatch(n) for n in numbers):
        return "invalid_phone_number_list"
    if "voice" in body and not (isinstance(body["voice"], str) and body["voice"] in VOICES):
        return "invalid_voice"
    if "speed" in body and not (_is_int(body["speed"]) and -3 <= body["speed"] <= 3):
        return "invalid_speed"
    strings_ok = all(isinstance(body.get(name, ""), str) for name in ("name", "cid"))
    counts_ok = all(_is_int(body.get(name, 0)) and body.get(name, 0) >= 0 for name in COUNT_FIELDS)
    return None if strings_ok and counts_ok else "invalid_field"


def _check_extension_fields(body: dict[str, Any]) -> str | None:
    required = ("template_dialplans", "variables", "extensions")
    if not all(name in body for name in required) or not is_str_list(body["extensions"]):
        return "missing_field"
    return None if isinstance(body.get("cid", ""), str) else "invalid_field"


def _check_script(body: dict[str, Any]) -> str | None:
    steps = body.get("template_dialplans", [])
    if "template_dialplans" in body and not (
        isinstance(steps, list) and steps and all(_is_step(step) for step in steps)
    ):
        return "invalid_template_dialplans"
    texts = sum(step["target_type"] == "Text_variable" for step in steps)
    variables = body.get("variables", [])
    if isinstance(variables, list) and len(variables) == texts:
        return None if all(isinstance(v, str) for v in variables) else "variables_mismatch"
    return "variables_mismatch"


def _is_step(step: object) -> bool:
    if not isinstance(step, dict) or step.get("target_type") not in STEP_TYPES:
        return False
    if step["target_type"] == "Text_variable":
        return step.keys() == {"target_type"}
    target = step.get("target")
    return step.keys() == {"target_type", "target"} and isinstance(target, str) and bool(target)


def is_str_list(value: object) -> TypeGuard[list[str]]:
    """A non-empty list of strings."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _is_int(value: object) -> bool:
    return type(value) is int


def tts_chars(body: dict[str, Any]) -> int:
    """TTS characters of a validated body: NFC code points of all its variables."""
    return sum(len(unicodedata.normalize("NFC", text)) for text in body.get("variables", []))


def error_body(style: str, code: str) -> dict[str, Any]:
    """An error answer carrying `code` the way envelope `style` does."""
    if style == "message":
        return {"status_code": 400, "message": code, "payload": None}
    if style == "payload":
        text = MESSAGES_VI.get(code, "Yêu cầu không hợp lệ")
        return {"status_code": 400, "payload": {"error": code, "message": text}}
    return {"status_code": 400, "payload": {"message": code}}


def success_body(
    action: str, body: dict[str, Any], autocall_id: str, uuids: list[str]
) -> dict[str, Any]:
    """The provider's success answer, in each endpoint's own documented shape; by phone with
    the `autocall_uuids` too (§12: an answer may carry them; history items name them)."""
    if action == "execute_by_phone":
        payload = {
            "autocall_id": autocall_id,
            "name": body.get("name", ""),
            "autocall_uuids": uuids,
        }
        return {"status_code": 9999, "payload": payload}
    return {
        "instance_id": "stg",
        "payload": {"autocall_uuids": uuids, "autocall_id": autocall_id},
        "instance_version": "1.2.164",
        "key_enabled": False,
        "status_code": 9999,
    }
