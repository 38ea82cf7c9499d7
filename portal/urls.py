"""Root URLs of the portal."""

from __future__ import annotations

from allauth.account import views as allauth_views
from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from portal import views

# The admin site signs in through allauth's login (password, lockout, then TOTP), never around it.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    # Django's set_language (POST language + next): the language switcher of base.html.
    path("i18n/", include("django.conf.urls.i18n")),
    # The djangojs catalogue (gettext/interpolate for static/js), public like the switcher: the sign-in page uses it.
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    # Sign-in and sign-out are django-allauth's; the names "login" and "logout" stay for LOGIN_URL and the
    # templates. They come before allauth's own URLs, which resolve to the same paths.
    path("accounts/login/", allauth_views.login, name="login"),
    path("accounts/logout/", allauth_views.logout, name="logout"),
    path("accounts/", include("allauth.urls")),
    path("api/", include("portal.api_urls")),
    path("audit/", include("audit.urls")),
    path("cohorts/", include("cohorts.urls")),
    path("datasets/", include("datasets.urls")),
    path("disclosure/", include("disclosure.urls")),
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
]
