"""RabbitMQ adapter (pika): confirmed, mandatory publishes; manual acks; retry queues; DLQ."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from microshop.events import EXCHANGE
from microshop.platform.bus import base
from microshop.platform.retry import BUS_RECONNECT, Backoff, Stopped, until_stopped

log = logging.getLogger(__name__)

PERSISTENT = pika.DeliveryMode.Persistent
# What a lost or refused broker connection raises.
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


def retry_queue_name(queue: str, attempt: int, retry: base.RetryPolicy) -> str:
    """The delay is part of the name: RabbitMQ refuses to redeclare a queue with another TTL,
    so a changed retry policy gets new queues instead of consumers that cannot reconnect
    (the old queues still dead-letter what they hold back to the main queue)."""
    return f"{queue}.retry.{attempt}.{int(retry.delay_before(attempt) * 1000)}ms"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


class RabbitBus(base.Bus):
    """One connection per thread (pika connections are not thread-safe).

    Publishing uses a connection owned by the calling thread (the outbox relay's); each
    subscription runs `consumers` consumer threads side by side, each with its own connection
    that reconnects with backoff when the broker goes away and re-declares its topology each
    time. Side by side, two events of one order may be handled in either order (as after any
    redelivery): every handler is written for that.
    """

    def __init__(
        self,
        url: str,
        retry: base.RetryPolicy,
        reconnect: Backoff = BUS_RECONNECT,
        consumers: int = 1,
    ) -> None:
        super().__init__(retry)
        self.reconnect, self.consumers = reconnect, consumers
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = 30
        self.parameters.blocked_connection_timeout = 30
        self.parameters.connection_attempts = 1
        self._local = threading.local()
        self._stopping = threading.Event()
        self._consumers: list[_Consumer] = []
        # Every thread's publishing channel, so close() releases the relay's too.
        self._publishers: list[BlockingChannel] = []
        self._publishers_lock = threading.Lock()

    # -- publishing -------------------------------------------------------------------------
    def _publish_channel(self) -> BlockingChannel:
        channel: BlockingChannel | None = getattr(self._local, "channel", None)
        if channel is None or channel.is_closed or channel.connection.is_closed:
            connection = pika.BlockingConnection(self.parameters)
            channel = connection.channel()
            channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
            channel.confirm_delivery()
            self._local.channel = channel
            with self._publishers_lock:
                self._publishers.append(channel)
        return channel

    def publish(self, messages: Sequence[base.OutgoingMessage]) -> None:
        try:
            channel = self._publish_channel()
            for message in messages:
                channel.basic_publish(
                    EXCHANGE,
                    message.routing_key,
                    message.body,
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=PERSISTENT,
                        message_id=message.message_id,
                        headers=dict(message.headers),
                    ),
                    mandatory=True,
                )
        except pika.exceptions.UnroutableError as exc:
            raise base.Unroutable(f"no queue is bound for the message yet: {exc}") from exc
        except pika.exceptions.AMQPError:
            self._drop_publish_channel()
            raise

    def _drop_publish_channel(self) -> None:
        channel = getattr(self._local, "channel", None)
        self._local.channel = None
        if channel is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to release
                channel.connection.close()

    # -- consuming --------------------------------------------------------------------------
    def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: base.Handler,
        probe: base.Probe = base._no_probe,
    ) -> None:
        started = [
            _Consumer(self, queue, tuple(routing_keys), handler, probe, n)
            for n in range(1, self.consumers + 1)
        ]
        self._consumers.extend(started)
        for consumer in started:
            consumer.start()
        for consumer in started:
            consumer.declared.wait(timeout=10)

    def ping(self) -> None:
        connection = pika.BlockingConnection(self.parameters)
        connection.close()

    def dead_letters(self, queue: str) -> list[base.IncomingMessage]:
        """Peek at the dead-letter queue without removing anything (requeued on close)."""
        connection = pika.BlockingConnection(self.parameters)
        try:
            channel = connection.channel()
            found = []
            while True:
                method, properties, body = channel.basic_get(dead_letter_queue_name(queue))
                if method is None:
                    break
                found.append(_incoming(method, properties, body))
            return found
        finally:
            connection.close()  # unacked basic_get messages go back to the queue

    def dead_letter_depths(self) -> dict[str, int]:
        return {c.queue: c.dead_letter_depth for c in self._consumers}

    def close(self) -> None:
        """Stop consumers and close every publishing connection. Call it after the threads
        that published (the relay) have stopped: pika connections belong to one thread."""
        self._stopping.set()
        for consumer in self._consumers:
            consumer.stop()
        self._drop_publish_channel()
        with self._publishers_lock:
            publishers, self._publishers = self._publishers, []
        for channel in publishers:
            with contextlib.suppress(Exception):  # already closed, or the broker is gone
                if channel.connection.is_open:
                    channel.connection.close()


def _incoming(
    method: object, properties: pika.BasicProperties, body: bytes
) -> base.IncomingMessage:
    headers = {str(k): str(v) for k, v in (properties.headers or {}).items()}
    return base.IncomingMessage(
        # A retried message comes back through the default exchange under the queue's name;
        # its original routing key travels in the `type` property.
        routing_key=properties.type or method.routing_key,  # type: ignore[attr-defined]
        body=body,
        message_id=properties.message_id or "",
        headers=headers,
        attempt=int(headers.get(base.ATTEMPT_HEADER, "1")),
        redelivered=bool(method.redelivered),  # type: ignore[attr-defined]
    )


class _Paused(Exception):
    """Raised out of a delivery's callback: the handler's infrastructure failed, so the consumer
    drops its connection (every unacked delivery goes back, its try not counted) and waits."""

    def __init__(self, reason: str, error: Exception) -> None:
        super().__init__(reason)
        self.reason, self.error = reason, error


# How often a consumer reads its dead-letter queue's depth (for the gauge), besides after each
# message it dead-letters.
DEAD_LETTER_REFRESH_SECONDS = 15.0


class _Consumer(threading.Thread):
    def __init__(
        self,
        bus: RabbitBus,
        queue: str,
        routing_keys: tuple[str, ...],
        handler: base.Handler,
        probe: base.Probe = base._no_probe,
        number: int = 1,
    ):
        super().__init__(name=f"bus-{queue}-{number}", daemon=True)
        self.bus, self.queue, self.routing_keys, self.handler = bus, queue, routing_keys, handler
        self.probe = probe
        self.declared = threading.Event()
        self.dead_letter_depth = 0
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _declare(self, channel: BlockingChannel) -> None:
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        channel.queue_declare(self.queue, durable=True)
        for key in self.routing_keys:
            channel.queue_bind(self.queue, EXCHANGE, routing_key=key)
        # One retry queue per attempt with its own TTL: a message waits there, then dead-letters
        # back to the main queue (and only to it, through the default exchange).
        for attempt in range(2, self.bus.retry.max_attempts + 1):
            channel.queue_declare(
                retry_queue_name(self.queue, attempt, self.bus.retry),
                durable=True,
                arguments={
                    "x-message-ttl": int(self.bus.retry.delay_before(attempt) * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.queue,
                },
            )
        channel.queue_declare(dead_letter_queue_name(self.queue), durable=True)

    def run(self) -> None:
        connect = until_stopped(
            self.bus.reconnect,
            self.bus._stopping,
            log,
            f"bus connection of {self.queue}",
            retry_on=_CONNECTION_ERRORS,
        )
        # Each connection lost starts a fresh backoff: the first reconnect is tried at once.
        while not self.bus._stopping.is_set():
            try:
                channel = connect(self._connect)
            except (*_CONNECTION_ERRORS, Stopped):  # only once stopping
                break
            paused: _Paused | None = None
            try:
                channel.start_consuming()
            except _Paused as exc:
                paused = exc
            except _CONNECTION_ERRORS as exc:
                if self.bus._stopping.is_set():
                    break
                log.warning(
                    "bus connection lost; reconnecting: %r", exc, extra={"queue": self.queue}
                )
            finally:
                # Closing the connection hands every unacked delivery back to the queue.
                self._close_connection()
            if paused is not None:
                try:
                    self.bus.paused.hold(
                        self.queue,
                        paused.reason,
                        paused.error,
                        self.probe,
                        self.bus.retry.probe,
                        self.bus._stopping,
                    )
                except Stopped:
                    break

    def _connect(self) -> BlockingChannel:
        """Connect, declare the queue's topology and start consuming (not yet dispatching)."""
        try:
            self._connection = pika.BlockingConnection(self.bus.parameters)
            channel = self._channel = self._connection.channel()
            self._declare(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=10)
            channel.basic_consume(self.queue, self._on_message)
            self._refresh_dead_letter_depth()
        except Exception:
            self._close_connection()
            raise
        self.declared.set()
        return channel

    def _on_message(
        self,
        channel: BlockingChannel,
        method: object,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        message = _incoming(method, properties, body)
        tag = method.delivery_tag  # type: ignore[attr-defined]
        try:
            self.handler(message)
        except Exception as exc:
            reason = base.infrastructure_reason(exc)
            if reason is not None:
                raise _Paused(reason, exc) from exc
            self._retry_or_dead_letter(channel, message, properties, exc)
        # Ack only after the handler's own commit, or after the retry/dead-letter copy is
        # confirmed by the broker: a crash before this line means redelivery, never loss.
        channel.basic_ack(tag)

    def _retry_or_dead_letter(
        self,
        channel: BlockingChannel,
        message: base.IncomingMessage,
        properties: pika.BasicProperties,
        error: Exception,
    ) -> None:
        attempt = message.attempt + 1
        if self.bus.retry.gives_up(message.attempt, error):
            target = dead_letter_queue_name(self.queue)
            # A dead letter records the attempts actually made (as the in-process bus does),
            # not a next attempt that will never happen.
            attempt = message.attempt
            log.error(
                "dead-lettering message after %d attempts: %s",
                message.attempt,
                error,
                exc_info=True,
                extra={"queue": self.queue, "message_id": message.message_id},
            )
        else:
            target = retry_queue_name(self.queue, attempt, self.bus.retry)
            log.warning(
                "handler failed; retrying",
                exc_info=True,
                extra={"queue": self.queue, "message_id": message.message_id, "attempt": attempt},
            )
        headers = base.failure_headers(
            dict(properties.headers or {}),
            error,
            dead=target == dead_letter_queue_name(self.queue),
        )
        headers[base.ATTEMPT_HEADER] = str(attempt)
        channel.basic_publish(
            "",
            target,
            message.body,
            pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=PERSISTENT,
                message_id=properties.message_id,
                headers=headers,
                type=message.routing_key,
            ),
            mandatory=True,
        )
        if target == dead_letter_queue_name(self.queue):
            self.dead_letter_depth += 1

    def _refresh_dead_letter_depth(self) -> None:
        """Read the dead-letter queue's depth now and every DEAD_LETTER_REFRESH_SECONDS, on
        the consumer's own connection (its thread runs the timer)."""
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or not channel.is_open:
            return
        declared = channel.queue_declare(dead_letter_queue_name(self.queue), passive=True)
        self.dead_letter_depth = declared.method.message_count
        connection.call_later(DEAD_LETTER_REFRESH_SECONDS, self._refresh_dead_letter_depth)

    def stop(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # connection already closing
                connection.add_callback_threadsafe(self._stop_consuming)
        self.join(timeout=5)

    def _stop_consuming(self) -> None:
        if self._channel is not None and self._channel.is_open:
            self._channel.stop_consuming()

    def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # the broker already dropped it
                connection.close()
