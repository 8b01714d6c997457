"""E-mail over SMTP: STARTTLS (default) or implicit TLS, optional AUTH, HTML with a plain-text part.

Messages of one decision form a thread in mail clients: each carries ``References`` and ``In-Reply-To``
pointing at the decision's root id ``<decision-<id>@<domain>>``. The ``Message-ID`` is derived from the
delivery id, so a retry after a lost answer is recognisable as the same message.

SMTP replies map onto the retry policy the usual way: 4xx temporary, 5xx permanent; authentication
failures and a server without STARTTLS are permanent (configuration), dropped connections temporary.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from reactor.notify.channels.base import ChannelBase, SendContext, Sent, register
from reactor.notify.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from reactor.notify.events import Event, EventKind
from reactor.notify.options import ChannelOptions, RateLimit, SecretRef
from reactor.notify.render import compose

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


class EmailOptions(ChannelOptions):
    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    #: ``starttls`` (port 587), ``ssl`` (implicit TLS, port 465) or ``none`` (a local relay only).
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretRef | None = None
    from_addr: str = Field(alias="from", min_length=3)
    to: tuple[str, ...] = Field(min_length=1)
    cc: tuple[str, ...] = ()
    subject_prefix: str = "[Smart Rollback]"
    #: CA bundle for a relay with a private CA.
    ca_file: Path | None = None
    verify_tls: bool = True
    #: Right-hand side of Message-IDs; default: the domain of ``from``.
    message_id_domain: str | None = None
    reasons: int = Field(default=5, ge=0, le=20)

    @model_validator(mode="after")
    def _auth(self) -> EmailOptions:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (password via password_env or password_file)")
        if self.password is not None and self.security == "none":
            raise ValueError("refusing to send the SMTP password unencrypted: use security starttls or ssl")
        return self


@register
class EmailChannel(ChannelBase):
    type: ClassVar[str] = "email"
    Options = EmailOptions
    default_rate_limit = RateLimit(per_minute=30, burst=10)

    def build(self, event: Event, ctx: SendContext) -> EmailMessage:
        """The MIME message for ``event``: text and HTML alternatives, threaded by decision."""
        options = self.options
        assert isinstance(options, EmailOptions)
        message = compose(event, max_reasons=options.reasons)
        actions: tuple[tuple[str, str], ...] = ()
        text = message.text()
        if event.kind is EventKind.HELD_FOR_APPROVAL:
            links = ctx.approval_links("email")
            if links:
                actions = (("Approve rollback", links.approve), ("Reject", links.reject))
                text += f"\nApprove rollback: {links.approve}\nReject: {links.reject}\n"
        domain = options.message_id_domain or options.from_addr.rpartition("@")[2].strip("> ") or "smart-rollback"
        root = f"<decision-{_UNSAFE_ID.sub('-', event.decision_id)}@{domain}>"
        mail = EmailMessage()
        mail["Subject"] = f"{options.subject_prefix} {message.headline}".strip()
        mail["From"] = options.from_addr
        mail["To"] = ", ".join(options.to)
        if options.cc:
            mail["Cc"] = ", ".join(options.cc)
        mail["Date"] = format_datetime(event.occurred_at)
        mail["Message-ID"] = f"<{ctx.delivery_id}@{domain}>"
        mail["References"] = root
        mail["In-Reply-To"] = root
        mail["X-Smart-Rollback-Decision"] = event.decision_id
        mail["X-Smart-Rollback-Event"] = event.kind.value
        mail.set_content(text)
        mail.add_alternative(message.html(actions), subtype="html")
        return mail

    def send(self, event: Event, ctx: SendContext) -> Sent:
        options = self.options
        assert isinstance(options, EmailOptions)
        mail = self.build(event, ctx)
        service = f"SMTP {options.host}:{options.port}"
        try:
            refused = self._transmit(mail, options)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"{service}: authentication failed for {options.username} ({exc.smtp_code})",
                status=exc.smtp_code,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError(f"{service}: {_short(exc)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = f"{service}: all recipients refused ({', '.join(str(c) for c in codes)})"
            if codes and all(400 <= c < 500 for c in codes):
                raise TemporaryDeliveryError(text, status=codes[0]) from None
            raise PermanentDeliveryError(text, status=codes[0] if codes else None) from None
        except smtplib.SMTPResponseException as exc:
            detail = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            )
            text = f"{service}: {exc.smtp_code} {' '.join(detail.split())[:200]}"
            if 400 <= exc.smtp_code < 500:
                raise TemporaryDeliveryError(text, status=exc.smtp_code) from None
            raise PermanentDeliveryError(text, status=exc.smtp_code) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                f"{service}: TLS certificate not trusted ({exc.verify_message}); set ca_file"
            ) from None
        except ssl.SSLError as exc:
            raise PermanentDeliveryError(
                f"{service}: TLS failed ({exc.reason or type(exc).__name__}); does security match the port "
                "(587: starttls, 465: ssl)?"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryDeliveryError(f"{service}: {type(exc).__name__} {_short(exc)}".rstrip()) from None
        detail = f"sent to {len(options.to) + len(options.cc) - len(refused)} recipient(s)"
        if refused:
            detail += f"; refused: {', '.join(sorted(refused))}"
        return Sent(remote_id=str(mail["Message-ID"]), detail=detail)

    def _transmit(self, mail: EmailMessage, options: EmailOptions) -> dict[str, tuple[int, bytes]]:
        timeout = self.deps.timeout[1]
        context = ssl.create_default_context(cafile=str(options.ca_file) if options.ca_file else None)
        if not options.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp: smtplib.SMTP
        if options.security == "ssl":
            smtp = smtplib.SMTP_SSL(options.host, options.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(options.host, options.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if options.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise PermanentDeliveryError(
                        f"SMTP {options.host}:{options.port}: the server does not offer STARTTLS; "
                        "check security and port (465 is implicit TLS: security ssl)"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if options.username is not None:
                if not smtp.has_extn("auth"):
                    raise PermanentDeliveryError(
                        f"SMTP {options.host}:{options.port}: the server does not offer AUTH; "
                        "remove username and password, or use the submission port"
                    )
                smtp.login(options.username, self.secrets["password"])
            return smtp.send_message(mail)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
