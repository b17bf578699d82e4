use super::*;
use std::fs;

fn builtin() -> Templates {
    Templates::load(None).unwrap()
}

fn write(dir: &Path, file: &str, source: &str) {
    let path = dir.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, source).unwrap();
}

/// A complete set whose three parts say where they came from.
fn write_set(dir: &Path, prefix: &str, name: &str, lang: &str, marker: &str) {
    write(
        dir,
        &format!("{prefix}{name}.{lang}.subject.txt"),
        &format!("{marker} subject"),
    );
    write(
        dir,
        &format!("{prefix}{name}.{lang}.txt"),
        &format!("{marker} text {{{{ link }}}}"),
    );
    write(
        dir,
        &format!("{prefix}{name}.{lang}.html"),
        &format!("<p>{marker} html {{{{ guest_name }}}}</p>"),
    );
}

#[test]
fn every_builtin_template_renders() {
    let templates = builtin();
    for name in TEMPLATE_NAMES {
        let ctx = sample_context(name).unwrap();
        let mail = templates.render(name, None, None, &ctx).unwrap();
        assert!(
            !mail.subject.is_empty() && !mail.subject.contains('\n'),
            "{name}"
        );
        assert!(!mail.text.trim().is_empty(), "{name}");
        assert!(mail.html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(mail.html.contains("<html lang=\"en\">"), "{name}");
        assert!(mail.html.contains("name=\"viewport\""), "{name}");
        // No external images or resources: nothing is loaded from anywhere.
        for forbidden in ["<img", "src=", "<link", "url(", "<script"] {
            assert!(!mail.html.contains(forbidden), "{name} has {forbidden}");
        }
        // No template syntax left over, no blank-line runs in the text.
        for part in [&mail.subject, &mail.text, &mail.html] {
            assert!(!part.contains("{{") && !part.contains("{%"), "{name}");
        }
        assert!(!mail.text.contains("\n\n\n"), "{name}:\n{}", mail.text);
        if let Some(link) = ctx.get("link").and_then(|l| l.as_str()) {
            assert!(
                mail.text.contains(&format!("\n{link}\n")),
                "{name}: link on its own line"
            );
            // A button and the raw link, escaped as HTML.
            let escaped = link.replace('/', "&#x2f;");
            assert_eq!(
                mail.html.matches(&format!("href=\"{escaped}\"")).count(),
                2,
                "{name}"
            );
            assert!(mail.html.contains(&format!(">{escaped}</a>")), "{name}");
        }
        if let Some(code) = ctx.get("code").and_then(|c| c.as_str()) {
            assert!(mail.text.contains(code) && mail.html.contains(code));
            assert!(!mail.subject.contains(code), "codes stay out of subjects");
        }
    }
}

#[test]
fn html_is_escaped_and_text_is_not() {
    let templates = builtin();
    for name in TEMPLATE_NAMES {
        let mut ctx = sample_context(name).unwrap();
        if ctx.get("guest_name").is_none() {
            continue;
        }
        ctx["guest_name"] = "<script>alert('x')</script> & Co".into();
        let mail = templates.render(name, None, None, &ctx).unwrap();
        assert!(!mail.html.contains("<script>"), "{name}");
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; Co"),
            "{name}: {}",
            mail.html
        );
        assert!(
            mail.text.contains("<script>alert('x')</script> & Co"),
            "{name}"
        );
    }
    // Names in app descriptions too.
    let mut ctx = sample_context("invitation").unwrap();
    ctx["apps"] = json!([{"name": "<b>EHR</b>", "description": "a \"quoted\" <i>thing</i>"}]);
    let mail = templates.render("invitation", None, None, &ctx).unwrap();
    assert!(mail.html.contains("&lt;b&gt;EHR&lt;&#x2f;b&gt;"));
    assert!(mail
        .html
        .contains("a &quot;quoted&quot; &lt;i&gt;thing&lt;&#x2f;i&gt;"));
    assert!(mail
        .text
        .contains("- <b>EHR</b>: a \"quoted\" <i>thing</i>"));
}

#[test]
fn subject_is_one_line() {
    let mut ctx = sample_context("invitation").unwrap();
    ctx["inviter"] = "North\r\nside\n  Hospitals\nBcc: x@y".into();
    let mail = builtin().render("invitation", None, None, &ctx).unwrap();
    assert_eq!(
        mail.subject,
        "North side Hospitals Bcc: x@y invites you to use its applications"
    );
}

#[test]
fn optional_fields_may_be_missing_but_required_ones_may_not() {
    let templates = builtin();
    let mut ctx = sample_context("invitation").unwrap();
    ctx.as_object_mut().unwrap().remove("sponsor");
    let mail = templates.render("invitation", None, None, &ctx).unwrap();
    assert!(!mail.text.contains("Your contact"));

    ctx.as_object_mut().unwrap().remove("link");
    let err = templates
        .render("invitation", None, None, &ctx)
        .err()
        .unwrap();
    match err {
        TemplateError::Render { file, .. } => {
            assert!(file.contains("invitation.en."), "{file}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn lookup_order_partner_lang_then_partner_en_then_lang_then_en() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_set(root, "", "invitation", "fr", "top-fr");
    write_set(root, "acme/", "invitation", "en", "acme-en");
    write_set(root, "acme/", "invitation", "de", "acme-de");
    write_set(root, "beta/", "invitation", "fr", "beta-fr");
    let templates = Templates::load(Some(root)).unwrap();
    let ctx = sample_context("invitation").unwrap();
    let subject = |partner: Option<&str>, lang: Option<&str>| {
        templates
            .render("invitation", partner, lang, &ctx)
            .unwrap()
            .subject
    };
    let builtin_subject = "Northside Hospitals invites you to use its applications";

    assert_eq!(subject(Some("acme"), Some("de")), "acme-de subject"); // partner + lang
    assert_eq!(subject(Some("acme"), Some("fr")), "acme-en subject"); // partner + en
    assert_eq!(subject(Some("acme"), None), "acme-en subject");
    assert_eq!(subject(Some("beta"), Some("fr")), "beta-fr subject");
    assert_eq!(subject(Some("beta"), Some("de")), builtin_subject); // default + en
    assert_eq!(subject(Some("other"), Some("fr")), "top-fr subject"); // default + lang
    assert_eq!(subject(None, Some("fr")), "top-fr subject");
    assert_eq!(subject(None, Some("FR-ca")), "top-fr subject"); // region falls back
    assert_eq!(subject(None, Some("fr_CA")), "top-fr subject");
    assert_eq!(subject(None, Some("nl")), builtin_subject);
    assert_eq!(subject(None, Some("../../etc")), builtin_subject);
    assert_eq!(subject(Some("../acme"), None), builtin_subject);

    // The three parts come from the same set, and the chosen language is in the context.
    let mail = templates
        .render("invitation", Some("acme"), Some("de"), &ctx)
        .unwrap();
    assert_eq!(
        mail.text,
        "acme-de text https://guestbridge.example/invite/SAMPLE"
    );
    assert_eq!(mail.html, "<p>acme-de html Ann Lee</p>");
    // Other templates are unaffected.
    let mail = templates
        .render(
            "otp_code",
            Some("acme"),
            Some("de"),
            &sample_context("otp_code").unwrap(),
        )
        .unwrap();
    assert_eq!(mail.subject, "Your verification code");
}

#[test]
fn top_level_files_replace_builtin_ones_and_partials() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A lone subject shadows the built-in one; the built-in bodies stay.
    write(root, "otp_code.en.subject.txt", "Code for {{ lang }}");
    // A replaced layout applies to every built-in HTML template.
    write(
            root,
            "_layout.html",
            "<!DOCTYPE html><html lang=\"{{ lang }}\"><body>BRANDED {% block content %}{% endblock %}</body></html>",
        );
    write(root, "README.md", "ignored");
    write(root, ".hidden", "ignored");
    let templates = Templates::load(Some(root)).unwrap();
    let mail = templates
        .render("otp_code", None, None, &sample_context("otp_code").unwrap())
        .unwrap();
    assert_eq!(mail.subject, "Code for en");
    assert!(mail.text.contains("123456"));
    assert!(mail.html.contains("BRANDED"), "{}", mail.html);
}

#[test]
fn missing_template_names_what_was_looked_for() {
    let templates = builtin();
    let err = templates
        .render("welcome", Some("acme"), Some("fr"), &json!({}))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "no mail template \"welcome\": looked for acme/welcome.fr.*, acme/welcome.en.*, \
             welcome.fr.*, welcome.en.*"
    );
}

#[test]
fn bad_overrides_are_reported_with_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_set(root, "acme/", "invitation", "fr", "ok");
    write(
        root,
        "acme/invitation.fr.html",
        "<p>\n{% if guest_name %}\nunclosed\n</p>",
    );
    write(root, "reminder.de.txt", "only the text part");
    write(root, "invitaton.en.html", "typo in the name");
    write(root, "otp_code.html", "no language");
    write(root, "otp_code.english.txt", "bad language");
    write(root, "notes.md", "stray file");
    write(root, "Bad_Partner/otp_code.en.txt", "bad folder");
    let errors = Templates::load(Some(root)).err().unwrap();
    let root = root.display().to_string();
    let expect = [
            format!("{root}/acme/invitation.fr.html:3: syntax error: unexpected end of input"),
            format!("{root}/reminder.de.*: incomplete template set, missing reminder.de.subject.txt, reminder.de.html"),
            format!("{root}/invitaton.en.html: unknown template name \"invitaton\""),
            format!("{root}/otp_code.html: missing language"),
            format!("{root}/otp_code.english.txt: invalid language \"english\""),
            format!("{root}/notes.md: expected {{name}}.{{lang}}.subject.txt"),
            format!("{root}/Bad_Partner: a sub-folder must be named after a partner slug"),
        ];
    for expected in &expect {
        assert!(
            errors.iter().any(|e| e.starts_with(expected.as_str())),
            "no error starting with {expected:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
}

#[test]
fn overrides_that_parse_are_tried_with_the_sample_context() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "signin_link.en.txt",
        "{{ link }}\n{{ expires_mins }}",
    );
    write(dir.path(), "acme/_footer.html", "{{ nothing.here }}");
    let errors = Templates::load(Some(dir.path())).err().unwrap();
    assert_eq!(
        errors,
        vec![format!(
            "{}/signin_link.en.txt:2: undefined value: `expires_mins` is undefined",
            dir.path().display()
        )]
    );
}

#[test]
fn missing_folder_means_no_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let templates = Templates::load(Some(&dir.path().join("templates"))).unwrap();
    assert!(templates
        .render(
            "invitation",
            None,
            None,
            &sample_context("invitation").unwrap()
        )
        .is_ok());
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let errors = Templates::load(Some(&file)).err().unwrap();
    assert_eq!(errors, vec![format!("{}: not a folder", file.display())]);
}

#[test]
fn sample_contexts_exist_for_every_name() {
    for name in TEMPLATE_NAMES {
        assert!(sample_context(name).is_some(), "{name}");
    }
    assert!(sample_context("nope").is_none());
}
