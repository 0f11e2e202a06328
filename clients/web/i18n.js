// Interface strings, Russian first (the default) and English. The language is taken from
// ?lang=, then from what the person chose before, then Russian.

const STRINGS = {
  ru: {
    "app.title": "Сферум",
    "lang.switch": "English",
    "lang.switch.label": "Switch to English",
    "role.teacher": "Учитель",
    "role.student": "Ученик",
    "role.parent": "Родитель",
    "gender.male": "Мужской",
    "gender.female": "Женский",
    "gender.none": "Не указан",
    "link.title": "Привязка учётной записи",
    "link.loading": "Загружаем приглашение…",
    "link.offer": "Журнал «{journal}» предлагает привязать учётную запись к профилю Сферум.",
    "link.role": "Роль",
    "link.school": "Школа",
    "link.expires": "Ссылка действует до",
    "link.signed_in_as": "Вы вошли как {name} ({phone}).",
    "link.continue": "Продолжить",
    "link.other_phone": "Войти под другим номером",
    "phone.title": "Номер телефона",
    "phone.hint": "Мы отправим SMS с кодом для входа. Если у вас уже есть профиль с этим номером, вы войдёте в него.",
    "phone.label": "Номер телефона",
    "phone.submit": "Получить код",
    "code.title": "Код из SMS",
    "code.sent": "Код отправлен на {phone}.",
    "code.label": "Код из SMS (6 цифр)",
    "code.submit": "Войти",
    "code.resend": "Отправить код ещё раз",
    "code.resend_in": "Отправить код ещё раз можно через {seconds} с",
    "code.change_phone": "Изменить номер",
    "profile.title.create": "Ваш профиль",
    "profile.title.check": "Проверьте профиль",
    "profile.hint.create": "Укажите свои данные. Роль и школу сообщает журнал.",
    "profile.hint.check": "Это ваш профиль в Сферуме. Если что-то неверно, исправьте.",
    "profile.last_name": "Фамилия",
    "profile.first_name": "Имя",
    "profile.patronymic": "Отчество (если есть)",
    "profile.birth_date": "Дата рождения",
    "profile.gender": "Пол",
    "profile.phone": "Телефон",
    "profile.save": "Сохранить",
    "profile.correct": "Всё верно",
    "profile.edit": "Изменить",
    "profile.not_set": "не указано",
    "confirm.title": "Подтверждение",
    "confirm.question": "Привязать учётную запись журнала «{journal}» к профилю {name}?",
    "confirm.submit": "Привязать",
    "done.title": "Учётная запись привязана",
    "done.text": "Готово. Теперь в журнале вместо «Привязать аккаунт к Сферум» будет «Сферум», а вы окажетесь в чатах своего класса и предметов.",
    "done.links": "Привязанные учётные записи",
    "done.unlink": "Отвязать учетную запись",
    "done.unlink.label": "Отвязать учётную запись «{role}», {school}",
    "done.unlinked": "Учётная запись отвязана.",
    "done.none": "Привязанных учётных записей нет.",
    "error.title": "Не получилось",
    "error.network": "Нет связи с сервером. Проверьте подключение и попробуйте ещё раз.",
    "error.unknown": "Что-то пошло не так ({code}). Попробуйте ещё раз.",
    "error.invalid_phone": "Это не похоже на номер телефона. Пример: +7 999 123-45-67.",
    "error.rate_limited": "Слишком много запросов кода. Попробуйте через {retry_after} с.",
    "error.sms_failed": "Не удалось отправить SMS. Попробуйте ещё раз.",
    "error.wrong_code": "Неверный код. Осталось попыток: {tries_left}.",
    "error.code_burned": "Слишком много неверных попыток. Запросите новый код.",
    "error.no_code": "Код не запрашивался или уже использован. Запросите новый.",
    "error.code_expired": "Срок действия кода истёк. Запросите новый.",
    "error.invalid_field": "Проверьте поле «{field_name}».",
    "error.auth_failed": "Вход устарел. Войдите ещё раз.",
    "error.link_not_found": "Такой ссылки нет. Попросите в журнале новую.",
    "error.link_used": "Эта ссылка уже использована. Попросите в журнале новую.",
    "error.link_expired": "Срок действия ссылки истёк. Попросите в журнале новую.",
    "error.already_linked": "Эта учётная запись журнала уже привязана к другому профилю.",
    "error.role_conflict.student": "К этому профилю уже привязана учётная запись родителя или учителя, поэтому учётную запись ученика к нему привязать нельзя. Зарегистрируйте ребёнка на его собственный номер телефона. Если нужна помощь: {support_contact}.",
    "error.role_conflict.other": "К этому профилю привязана учётная запись ученика, поэтому учётную запись «{role}» к нему привязать нельзя. Войдите под своим номером телефона, а не номером ребёнка. Если нужна помощь: {support_contact}.",
    "field.first_name": "Имя",
    "field.last_name": "Фамилия",
    "field.patronymic": "Отчество",
    "field.birth_date": "Дата рождения",
    "field.gender": "Пол",
    "field.phone": "Номер телефона",
    "field.code": "Код из SMS",
  },
  en: {
    "app.title": "Sferum",
    "lang.switch": "Русский",
    "lang.switch.label": "Переключить на русский",
    "role.teacher": "Teacher",
    "role.student": "Student",
    "role.parent": "Parent",
    "gender.male": "Male",
    "gender.female": "Female",
    "gender.none": "Not given",
    "link.title": "Link your journal account",
    "link.loading": "Loading the invitation…",
    "link.offer": "The journal “{journal}” offers to link an account to your Sferum profile.",
    "link.role": "Role",
    "link.school": "School",
    "link.expires": "This link is valid until",
    "link.signed_in_as": "You are signed in as {name} ({phone}).",
    "link.continue": "Continue",
    "link.other_phone": "Use another phone number",
    "phone.title": "Phone number",
    "phone.hint": "We will text you a sign-in code. If a profile with this number exists, you will sign in to it.",
    "phone.label": "Phone number",
    "phone.submit": "Get a code",
    "code.title": "Code from the SMS",
    "code.sent": "The code was sent to {phone}.",
    "code.label": "Code from the SMS (6 digits)",
    "code.submit": "Sign in",
    "code.resend": "Send the code again",
    "code.resend_in": "You can ask for a new code in {seconds} s",
    "code.change_phone": "Change the number",
    "profile.title.create": "Your profile",
    "profile.title.check": "Check your profile",
    "profile.hint.create": "Tell us who you are. Your role and school come from the journal.",
    "profile.hint.check": "This is your Sferum profile. Correct anything that is wrong.",
    "profile.last_name": "Last name",
    "profile.first_name": "First name",
    "profile.patronymic": "Patronymic (if any)",
    "profile.birth_date": "Date of birth",
    "profile.gender": "Gender",
    "profile.phone": "Phone",
    "profile.save": "Save",
    "profile.correct": "That's right",
    "profile.edit": "Edit",
    "profile.not_set": "not given",
    "confirm.title": "Confirm",
    "confirm.question": "Link the account of the journal “{journal}” to the profile of {name}?",
    "confirm.submit": "Link",
    "done.title": "Account linked",
    "done.text": "Done. The journal now shows “Sferum” for this account, and you will be in the chats of your class and subjects.",
    "done.links": "Linked accounts",
    "done.unlink": "Unlink account",
    "done.unlink.label": "Unlink the {role} account, {school}",
    "done.unlinked": "The account was unlinked.",
    "done.none": "No linked accounts.",
    "error.title": "Something went wrong",
    "error.network": "The server can't be reached. Check your connection and try again.",
    "error.unknown": "Something went wrong ({code}). Please try again.",
    "error.invalid_phone": "That doesn't look like a phone number. Example: +7 999 123-45-67.",
    "error.rate_limited": "Too many code requests. Try again in {retry_after} s.",
    "error.sms_failed": "The SMS could not be sent. Please try again.",
    "error.wrong_code": "Wrong code. Tries left: {tries_left}.",
    "error.code_burned": "Too many wrong tries. Ask for a new code.",
    "error.no_code": "No code was requested, or it was used. Ask for a new one.",
    "error.code_expired": "The code has expired. Ask for a new one.",
    "error.invalid_field": "Check the field “{field_name}”.",
    "error.auth_failed": "Your sign-in has ended. Please sign in again.",
    "error.link_not_found": "There is no such link. Ask the journal for a new one.",
    "error.link_used": "This link was used already. Ask the journal for a new one.",
    "error.link_expired": "This link has expired. Ask the journal for a new one.",
    "error.already_linked": "This journal account is linked to another profile already.",
    "error.role_conflict.student": "This profile holds a parent or teacher account, so a student account can't be linked to it. Register the child with the child's own phone number. For help: {support_contact}.",
    "error.role_conflict.other": "This profile holds a student account, so a {role} account can't be linked to it. Sign in with your own phone number, not the child's. For help: {support_contact}.",
    "field.first_name": "First name",
    "field.last_name": "Last name",
    "field.patronymic": "Patronymic",
    "field.birth_date": "Date of birth",
    "field.gender": "Gender",
    "field.phone": "Phone number",
    "field.code": "Code from the SMS",
  },
};

export const LANGS = Object.keys(STRINGS);

// Each page's module brings its own strings ({ru: {...}, en: {...}}), so pages grow without
// editing one shared table; a key defined twice keeps the first definition.
export function addStrings(table) {
  for (const [code, strings] of Object.entries(table)) {
    if (!(code in STRINGS)) continue;
    for (const [key, text] of Object.entries(strings)) {
      if (!(key in STRINGS[code])) STRINGS[code][key] = text;
    }
  }
}
const STORAGE_KEY = "sferum.lang";

export function chooseLang() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked && asked in STRINGS) {
    localStorage.setItem(STORAGE_KEY, asked);
    return asked;
  }
  const saved = localStorage.getItem(STORAGE_KEY);
  return saved && saved in STRINGS ? saved : "ru";
}

let lang = "ru";

export function setLang(next) {
  lang = next in STRINGS ? next : "ru";
  localStorage.setItem(STORAGE_KEY, lang);
  document.documentElement.lang = lang;
}

export function currentLang() {
  return lang;
}

// t("code.sent", {phone}) fills {name} placeholders; an unknown key shows itself, so a
// missing translation is visible rather than silently empty.
export function t(key, params = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.ru[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

// A refused request, as the person should read it: the server's code picks the text and
// its extra fields fill it in.
export function errorText(error, context = {}) {
  const code = error.code;
  if (code === "role_conflict") {
    const key = context.role === "student" ? "error.role_conflict.student" : "error.role_conflict.other";
    return t(key, { ...error, role: t(`role.${context.role}`).toLowerCase() });
  }
  if (code === "invalid_field") {
    return t("error.invalid_field", { field_name: t(`field.${error.field}`) });
  }
  const key = `error.${code}`;
  return key in STRINGS[lang] ? t(key, error) : t("error.unknown", { code });
}
