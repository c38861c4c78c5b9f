"""The engine's own small exception hierarchy; third-party errors are translated into these."""


class JourneyError(Exception):
    """Base of every error the engine reports to its users."""


class InvalidTouchpoint(JourneyError):
    """A touchpoint breaks the contract or a domain rule; `field` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class DecodeError(JourneyError):
    """Bytes or text that could not be read as a record."""


class DefinitionError(JourneyError):
    """A journey definition that cannot be used; the message names the key and the problem."""


class ConfigurationError(JourneyError):
    """Settings that cannot be used."""


class ServiceUnavailable(ConfigurationError):
    """A server the engine needs (PostgreSQL, Kafka) cannot be reached (yet)."""


class StoreUnavailable(ServiceUnavailable):
    """The store's server cannot be reached (yet)."""


class RegistryUnavailable(ServiceUnavailable):
    """The schema registry does not answer (yet): an outage to wait out, never a reason to
    give up on the record that needed it."""


class UnknownCustomer(JourneyError):
    """A customer the engine has never recorded a touchpoint for."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no touchpoints recorded for customer {customer_id!r}")
        self.customer_id = customer_id


class UnknownAction(JourneyError):
    """An action id the engine never decided."""

    def __init__(self, action_id: str) -> None:
        super().__init__(f"no action {action_id!r} was decided")
        self.action_id = action_id


class UnknownOwner(JourneyError):
    """An owner (a rep or a role) no action was ever decided for."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"no actions were ever decided for owner {owner!r}")
        self.owner = owner


class EncodeError(JourneyError):
    """A record that does not fit its schema."""


class InvalidOutcome(JourneyError):
    """An action outcome that breaks the contract or refers to no such action; `field` names
    what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class StoreTooNew(ConfigurationError):
    """The store was written by a newer release of the engine than this one."""
