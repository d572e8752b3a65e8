"""What a service refuses, in one sentence; the HTTP layer maps each kind to its status code."""


class ServiceError(Exception):
    pass


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class Invalid(ServiceError):
    pass
